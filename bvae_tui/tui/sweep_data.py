"""What the screens show of sweeps, read through the engine (no Textual here, so it is easy to
test): the sweep rows of the runs table and the sweep screen's grid and queue."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.text import Text

from bvae_tui.engine.runs.files import FileCache, read_json
from bvae_tui.engine.runs.records import RunSummary
from bvae_tui.engine.runs.sweeps.records import SweepRecord
from bvae_tui.engine.runs.sweeps.store import MEMBER_STATES, Sweep, list_sweeps, sweep_state
from bvae_tui.engine.runs.sweeps.table import SweepGrid, score, sweep_grid
from bvae_tui.safe_text import plain
from bvae_tui.styles import state_style
from bvae_tui.tui.run_data import RunRow, fmt_num


@dataclass(frozen=True)
class SweepRow:
    """A sweep in the runs table: its members at a glance (they are rows of their own)."""

    id: str
    path: str
    name: str
    state: str
    error: str
    members: int
    counts: tuple[tuple[str, int], ...]  # (member state, how many), states with members only
    iteration: int  # all members together
    total: int
    axes: str  # "beta x seed"
    dataset: str
    started: float | None
    duration: float | None
    member_ids: tuple[str, ...] = ()  # in grid order

    loss = None  # the runs table sorts sweeps among runs by the same keys

    @property
    def key(self) -> str:
        return SWEEP_KEY + self.id

    def place(self, member: RunRow) -> str:
        """A member's place in the grid, e.g. ``beta=4 seed=2`` (from its name)."""
        prefix = self.name + " "
        return member.name[len(prefix):] if member.name.startswith(prefix) else member.name

    @property
    def finished(self) -> int:
        return dict(self.counts).get("finished", 0)

    @property
    def counts_text(self) -> str:
        return ", ".join(f"{n} {state}" for state, n in self.counts)

    def matches(self, text: str) -> bool:
        hay = " ".join((self.id, self.name, self.state, self.axes, self.dataset)).lower()
        return all(word in hay for word in text.lower().split())


SWEEP_KEY = "sweep:"  # table keys of sweep rows (run ids never start with it)


def sweep_rows(root: Path, rows: list[RunRow], caches: dict[Path, FileCache]) -> list[SweepRow]:
    """A row per sweep under ``root``, aggregated from its members' rows."""
    by_sweep: dict[str, list[RunRow]] = {}
    for row in rows:
        if row.sweep:
            by_sweep.setdefault(row.sweep, []).append(row)
    out = []
    for sweep in list_sweeps(root):
        cache = caches.setdefault(sweep.path, FileCache())
        data = cache.get(sweep.record_path, read_json)
        if data is None:
            continue
        record = SweepRecord.from_dict(data)
        members = by_sweep.get(sweep.id, [])
        counts = Counter(r.state if r.state in MEMBER_STATES else "failed" for r in members)
        counts["failed"] += max(0, len(record.members) - len(members))  # deleted members
        sched = sweep.scheduler()
        state, error = sweep_state(sweep.id, record, sched, sweep.scheduler_alive(sched),
                                   counts)
        starts = [r.started for r in members if r.started]
        begun = min(starts) if starts else record.created
        end = time.time() if state == "running" else max(
            [r.started + (r.duration or 0) for r in members if r.started] or [begun or 0])
        out.append(SweepRow(
            id=sweep.id, path=str(sweep.path), name=record.name or sweep.id, state=state,
            error=error or "", members=len(record.members),
            counts=tuple((s, counts[s]) for s in MEMBER_STATES if counts[s]),
            iteration=sum(r.iteration for r in members), total=sum(r.total for r in members),
            axes=" x ".join(record.axes), dataset=members[0].dataset if members else "?",
            started=begun, duration=end - begun if begun else None,
            member_ids=tuple(record.members)))
    return out


# --------------------------------------------------------------------------------------------
# The sweep screen


@dataclass
class SweepView:
    """Everything the sweep screen shows, read in one go by its watcher."""

    id: str
    name: str
    state: str
    error: str
    executor: str
    where: str  # "on cpu, 2 per device" / "on Slurm"
    grid: SweepGrid
    counts: tuple[tuple[str, int], ...]
    placements: dict[str, str]  # run id -> device, of the members its scheduler placed
    # run id -> Slurm's state (and reason) of an active member's job, e.g. PENDING
    # (JobArrayTaskLimit): what holds a member back is Slurm's to say, not ours.
    slurm: dict[str, str] = field(default_factory=dict)

    @property
    def counts_text(self) -> str:
        return ", ".join(f"{n} {state}" for state, n in self.counts)

    def place(self, run_id: str) -> str:
        for (i, j), member in self.grid.cells.items():
            if member.id == run_id:
                return " ".join(p for p in (self.grid.row_label(i), self.grid.col_label(j)) if p)
        return run_id


def read_sweep_view(sweep: Sweep, caches: dict[str, FileCache]) -> SweepView:
    record = sweep.record()
    grid = sweep_grid(sweep, caches)
    counts = Counter(m.state if m.state in MEMBER_STATES else "failed"
                     for m in grid.cells.values())
    counts["failed"] += len(grid.missing)
    sched = sweep.scheduler()
    alive = sweep.scheduler_alive(sched)
    state, error = sweep_state(sweep.id, record, sched, alive, counts)
    where = (f"on {', '.join(record.devices)}, {record.per_device or 1} per device"
             if record.executor != "slurm" else "on Slurm")
    return SweepView(id=sweep.id, name=record.name or sweep.id, state=state, error=error or "",
                     executor=record.executor or "local", where=where, grid=grid,
                     counts=tuple((s, counts[s]) for s in MEMBER_STATES if counts[s]),
                     placements=dict(sched.placements) if alive else {},
                     slurm=_slurm_states(sweep) if record.executor == "slurm" else {})


def _slurm_states(sweep: Sweep) -> dict[str, str]:
    """squeue's word on the active members' jobs ({} when there are none or squeue is mute)."""
    from bvae_tui.engine.runs.sweeps import slurm

    active = [r for r in sweep.members() if r.path.is_dir() and r.status().active]
    return slurm.queue_states(sweep, active) if active else {}


def cell_label(member: RunSummary | None, score_name: str) -> Text:
    """A grid cell: the member's state (short), its progress, and the chosen score."""
    if member is None:
        return Text("gone", style=state_style("failed"))
    pct = f"{100 * member.iteration // member.total}%" if member.total else ""
    # A member that is not training says how far it got (a stopped one resumes from there).
    got = f"{member.iteration}/{member.total}" if member.total and member.iteration else ""
    word = {"finished": "done", "running": pct or "run"}.get(
        member.state, f"{member.state} {got}".strip())
    text = Text(plain(word), style=state_style(member.state))  # a state from a member's file
    value = score(member, score_name)
    if value is not None:
        text.append(f" {fmt_num(value)}", style="cyan")
    return text
