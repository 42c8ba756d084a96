"""How `bvae sweeps` and `bvae sweep show` print (rich tables) and what their --json holds.

Sweep and member ids, names, devices, swept values and errors come from files (sweep.json, the
members' run files): every one is printed as Text (:mod:`bvae_tui.safe_text`), never as markup."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.text import Text

from bvae_tui.cli.common import console
from bvae_tui.safe_text import as_text, plain
from bvae_tui.styles import state_style


def _styled(text: str, state: str) -> Text:
    """``text`` in the colour of ``state``."""
    return as_text(text, state_style(state))


def print_sweeps(summaries: list[Any], root: Path) -> None:
    from rich.table import Table

    out = console()
    if not summaries:
        out.print(as_text(f"no sweeps under {root}; start one with: bvae sweep --preset "
                          "dsprites-H --beta 1,4 --seed 1,2"))
        return
    if not out.is_terminal:
        out.width = 200
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("ID", "STATE", "MEMBERS", "DONE", "RUN", "QUEUED", "FAILED", "EXECUTOR"):
        table.add_column(col, no_wrap=True)
    for s in summaries:
        table.add_row(as_text(s.id), _styled(s.state, s.state), str(s.members), str(s.finished),
                      str(s.running), str(s.queued), str(s.failed + s.lost), as_text(s.executor))
    out.print(table)
    for s in summaries:  # what Slurm says of the jobs of the sweeps it runs
        if s.executor == "slurm" and s.queued + s.running:
            said = _slurm_states(s.path)
            if said:
                out.print(as_text(f"{s.id} on Slurm: {said}"))


def _slurm_states(sweep_path: str) -> str:
    from bvae_tui.engine.runs.sweeps import slurm
    from bvae_tui.engine.runs.sweeps.store import Sweep

    sweep = Sweep(Path(sweep_path))
    return slurm.queue_summary(slurm.queue_states(sweep, _active(sweep)))


def _active(sweep: Any) -> list[Any]:
    return [r for r in sweep.members() if r.path.is_dir() and r.status().active]


def member_json(summary: Any, values: dict[str, Any], job: str | None,
                slurm_state: str | None = None) -> dict[str, Any]:
    return {"id": summary.id, "values": values, "state": summary.state,
            "iteration": summary.iteration, "total": summary.total, "device": summary.device,
            "loss": summary.loss, "scores": summary.scores, "error": summary.error or None,
            "job": job, "slurm_state": slurm_state}


def sweep_json(sweep: Any) -> dict[str, Any]:
    """`bvae sweep show --json` (and `bvae sweep --json`): the summary, the spec, the members."""
    from bvae_tui.engine.runs.store import Run

    record, sched = sweep.record(), sweep.scheduler()
    slurm_states = _queue_states(sweep, record)
    members = []
    for run_id, values in zip(record.members, sweep.member_values(), strict=False):
        run = Run(sweep.runs_root / run_id)
        if not run.path.is_dir():
            members.append({"id": run_id, "values": values, "state": "failed",
                            "error": "run directory is gone"})
            continue
        members.append(member_json(run.summary(), values,
                                   run.raw_status().job or sched.jobs.get(run_id),
                                   slurm_states.get(run_id)))
    return {**sweep.summary().as_json(), "description": record.description,
            "preset": record.preset, "fixed": record.fixed, "axes": record.axes,
            "values": record.values, "devices": record.devices,
            "per_device": record.per_device, "slurm": record.slurm,
            "placements": sched.placements if sweep.scheduler_alive(sched) else {},
            "runs": members}


def _queue_states(sweep: Any, record: Any) -> dict[str, str]:
    """Run id -> Slurm's state (and reason) of each active member's job; {} off Slurm."""
    if record.executor != "slurm":
        return {}
    from bvae_tui.engine.runs.sweeps import slurm

    return slurm.queue_states(sweep, _active(sweep))


def cell_text(member: Any, score_name: str) -> Text:
    """``finished 100% 0.81``: state, progress and the chosen score of one member."""
    from bvae_tui.engine.runs.sweeps.table import score

    pct = f" {100 * member.iteration // member.total}%" if member.total else ""
    value = score(member, score_name)
    shown = "" if value is None else f" {value:.3g}"
    return Text.assemble(_styled(f"{member.state}{pct}", member.state), shown)


def print_grid(sweep: Any, score_name: str | None) -> None:
    from rich.table import Table

    from bvae_tui.engine.runs.sweeps.table import default_score, sweep_grid

    out = console()
    if not out.is_terminal:
        out.width = 200
    summary, record, sched = sweep.summary(), sweep.record(), sweep.scheduler()
    grid = sweep_grid(sweep)
    score_name = score_name or default_score(grid)
    where = (f"on {', '.join(record.devices)}, {record.per_device or 1} per device"
             if summary.executor == "local" else "on Slurm")
    out.print(Text.assemble((plain(sweep.id), "bold"), "  ",
                            _styled(summary.state, summary.state),
                            plain(f"  {summary.members} members {where}  ({summary.counts})")))
    if summary.error:
        out.print(_styled(summary.error, summary.state))
    table = Table(box=None, header_style="bold", pad_edge=False,
                  title=as_text(f"cells: state, progress, {score_name}"), title_justify="left")
    table.add_column(as_text(" ".join(grid.row_axes) or "member"), no_wrap=True)
    for j in range(len(grid.cols)):  # swept values: a string field's may hold anything
        table.add_column(as_text(grid.col_label(j) or "state"), no_wrap=True)
    for i in range(len(grid.rows)):
        cells = []
        for j in range(len(grid.cols)):
            member = grid.cells.get((i, j))
            cells.append(cell_text(member, score_name) if member else
                         _styled("gone", "failed"))
        table.add_row(as_text(grid.row_label(i)), *cells)
    out.print(table)
    placements = sched.placements if sweep.scheduler_alive(sched) else {}
    started = [m for m in grid.members()
               if m.state == "running" or (m.state == "queued" and m.id in placements)]
    waiting = [m for m in grid.members() if m.state == "queued" and m.id not in placements]
    for m in started:
        what = "running " if m.state == "running" else "starting"
        out.print(as_text(f"{what}  {m.id} on {placements.get(m.id) or m.device or '?'}  "
                          f"{m.iteration}/{m.total}"))
    slurm_states = _queue_states(sweep, record) if started or waiting else {}
    if slurm_states:  # each member's job as Slurm sees it: PENDING (JobArrayTaskLimit)...
        for m in started + waiting:
            if m.id in slurm_states:
                out.print(as_text(f"slurm    {m.id}  {slurm_states[m.id]}"))
    elif waiting:
        out.print(as_text(f"waiting  {len(waiting)} member(s)"
                          + (f" for a slot (scheduler pid {sched.pid})"
                             if summary.scheduler_pid else "")))
    for m in grid.members():
        if m.state in ("failed", "lost") and m.error:
            out.print(_styled(f"{m.state}  {m.id}: {m.error}", m.state))
    if summary.state == "running":
        out.print(f"[dim]as of {time.strftime('%H:%M:%S')}[/]")
