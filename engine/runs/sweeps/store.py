"""The sweep store: sweep directories under ``<runs root>/sweeps/`` and their member runs.

A sweep is ``<runs root>/sweeps/<sweep id>/`` (its files: :mod:`.records`); each member is an
ordinary run directory under the runs root whose config.json names the sweep, so every command
that works on a run works on a member. Like the run store, nothing here imports torch.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from bvae_tui.engine.atomic import share_like_open
from bvae_tui.engine.config import TrainConfig
from bvae_tui.engine.errors import SweepError
from bvae_tui.engine.runs.files import read_json, write_json_atomic
from bvae_tui.engine.runs.guard import check_record_dir, is_link, open_append, valid_id
from bvae_tui.engine.runs.process import worker_alive
from bvae_tui.engine.runs.readers import read_record
from bvae_tui.engine.runs.refs import match_ref
from bvae_tui.engine.runs.store import Run, create_run, delete_run, slug
from bvae_tui.engine.runs.sweeps.flock import locked
from bvae_tui.engine.runs.sweeps.grid import grid, label
from bvae_tui.engine.runs.sweeps.records import (
    QUEUE_LOCK,
    SCHEDULER_FILE,
    SCHEDULER_LOCK,
    SCHEDULER_LOG,
    SLURM_DIR,
    SWEEP_FILE,
    SWEEPS_DIR,
    SchedulerStatus,
    SweepRecord,
    SweepSummary,
)

MEMBER_STATES = ("finished", "running", "queued", "stopped", "failed", "lost")


def sweeps_root(runs_root: Path) -> Path:
    return Path(runs_root) / SWEEPS_DIR


class Sweep:
    """One sweep directory. Cheap to construct; every accessor reads from disk."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.id = self.path.name

    def __repr__(self) -> str:
        return f"Sweep({self.id!r})"

    @property
    def runs_root(self) -> Path:
        return self.path.parent.parent

    @property
    def record_path(self) -> Path:
        return self.path / SWEEP_FILE

    @property
    def scheduler_path(self) -> Path:
        return self.path / SCHEDULER_FILE

    @property
    def log_path(self) -> Path:
        return self.path / SCHEDULER_LOG

    @property
    def lock_path(self) -> Path:
        return self.path / SCHEDULER_LOCK

    @property
    def slurm_dir(self) -> Path:
        return self.path / SLURM_DIR

    # The record and the members ---------------------------------------------------------------
    def record(self) -> SweepRecord:
        """sweep.json; a SweepError when it is missing, corrupt, or names a member by anything
        but a run id (``../x`` or an absolute path would reach outside the runs dir)."""
        data = read_json(self.record_path)
        if data is None:
            raise SweepError(f"sweep {self.id}: {SWEEP_FILE} is missing or corrupt; delete it "
                             f"with 'bvae sweep rm {self.id}'")
        record = SweepRecord.from_dict(data)
        bad = [m for m in record.members if not valid_id(m)]
        if bad:
            raise SweepError(f"sweep {self.id}: {SWEEP_FILE} names {len(bad)} member(s) by "
                             f"something that is not a run id ({bad[0]!r}); delete the sweep "
                             f"with 'bvae sweep rm {self.id}' (only its real members go)")
        return record

    @property
    def name(self) -> str:
        data = read_json(self.record_path)
        return (SweepRecord.from_dict(data).name if data else None) or self.id

    def members(self) -> list[Run]:
        """The member runs, in grid order. A run directory listed in sweep.json whose
        config.json does not name this sweep (a hand-edited or foreign sweep.json) is left out:
        it is never trained, stopped or deleted through this sweep. A member whose directory
        is gone is kept (its place in the grid); callers skip what is not a directory."""
        return [run for run in (Run(self.runs_root / i) for i in self.record().members)
                if self.owns(run)]

    def deletable_members(self) -> list[Run]:
        """The member run directories that deleting the sweep deletes: read leniently (a
        damaged sweep.json must still be removable), and only what is provably this sweep's:
        a run id, a real directory under the runs root, whose own config.json names this
        sweep. Anything else sweep.json lists is left alone."""
        listed = SweepRecord.from_dict(read_json(self.record_path) or {}).members
        runs = [Run(self.runs_root / m) for m in listed if valid_id(m)]
        return [r for r in runs if r.path.is_dir() and not is_link(r.path) and self.owns(r)]

    def owns(self, run: Run) -> bool:
        """Whether ``run`` is this sweep's member by its own config.json (or is gone)."""
        if not run.path.exists() and not is_link(run.path):
            return True
        if is_link(run.path) or not run.path.is_dir():
            return False
        record = read_record(run.config_path)
        return record is not None and record.sweep == self.id

    def member_values(self) -> list[dict[str, Any]]:
        """The swept values of each member, in the order of :meth:`members`."""
        record = self.record()
        return list(grid(record.values, record.axes))

    def member(self, ref: str) -> Run:
        """A member by run id, unique id prefix, or its place in the grid (``beta=4 seed=2``)."""
        ids = self.record().members
        values = self.member_values()
        found = [run_id for run_id, swept in zip(ids, values, strict=False)
                 if ref in (run_id, label(swept), label(swept).replace(" ", ","))]
        found = found[:1] or ([i for i in ids if i.startswith(ref)] if ref else [])
        if len(found) == 1 and self.owns(run := Run(self.runs_root / found[0])):
            return run
        raise SweepError(f"sweep {self.id} has no member '{ref}'; 'bvae sweep show {self.id}' "
                         "lists them")

    # The scheduler ----------------------------------------------------------------------------
    def scheduler(self) -> SchedulerStatus:
        return SchedulerStatus.from_dict(read_json(self.scheduler_path))

    def write_scheduler(self, **changes: Any) -> SchedulerStatus:
        status = dataclasses.replace(self.scheduler(), **changes, updated=time.time())
        write_json_atomic(self.scheduler_path, status.to_dict())
        return status

    def scheduler_alive(self, status: SchedulerStatus | None = None) -> bool:
        """Is the scheduler that wrote scheduler.json still running (on this machine)?"""
        status = status or self.scheduler()
        if status.state not in ("starting", "running"):
            return False
        if status.host and status.host != socket.gethostname():
            return time.time() - (status.heartbeat or 0.0) < 60.0
        return worker_alive(status.pid, status.pid_start)

    @contextlib.contextmanager
    def queue_lock(self) -> Iterator[None]:
        """Held while a member is taken from the queue or put back, so that a scheduler and a
        stop or resume never act on the same member at once."""
        with locked(self.path / QUEUE_LOCK):
            yield

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open_append(self.log_path) as fh:
            fh.write(f"{stamp} {message}\n".encode())

    # Summary ----------------------------------------------------------------------------------
    def summary(self) -> SweepSummary:
        try:
            record = self.record()
        except SweepError as exc:
            return SweepSummary(id=self.id, name=self.id, path=str(self.path), state="lost",
                                error=str(exc))
        counts: collections.Counter[str] = collections.Counter()
        iterations = total = 0
        for run in self.members():
            status = run.status() if run.path.is_dir() else None
            state = status.state if status is not None else "failed"
            counts[state if state in MEMBER_STATES else "failed"] += 1
            if status is not None:
                iterations += status.iteration or 0
                total += status.total or 0
        sched = self.scheduler()
        alive = self.scheduler_alive(sched)
        state, error = sweep_state(self.id, record, sched, alive, counts)
        return SweepSummary(
            id=self.id, name=record.name or self.id, path=str(self.path), state=state,
            executor=record.executor or "local", members=len(record.members),
            created=record.created, scheduler_pid=sched.pid if alive else None, error=error,
            iterations=iterations, total=total, axes=tuple(record.axes),
            **{s: counts[s] for s in MEMBER_STATES})


def sweep_state(sweep_id: str, record: SweepRecord, sched: SchedulerStatus, alive: bool,
                counts: collections.Counter[str]) -> tuple[str, str | None]:
    """The sweep's state and what to say about it, from its scheduler and its members' states
    (``counts``: members per state)."""
    left = counts["queued"] + counts["running"] + counts["stopped"] + counts["lost"]
    if alive or (record.executor == "slurm" and counts["queued"] + counts["running"]):
        return "running", None
    if not left or sched.state == "finished":
        return "finished", sched.error
    if sched.stop_requested or sched.state == "stopped" or not (counts["queued"]
                                                                  or counts["lost"]):
        return "stopped", sched.error
    who = f"its scheduler (pid {sched.pid}) is gone" if record.executor != "slurm" else \
        "members were lost by Slurm"
    return "lost", f"{who}; 'bvae sweep resume {sweep_id}' continues it"


# --------------------------------------------------------------------------------------------
# Creating, listing, finding, deleting


def create_sweep(runs_root: Path, record: SweepRecord,
                 members: list[tuple[dict[str, Any], TrainConfig]],
                 data_dir: str | os.PathLike, scheduler: SchedulerStatus) -> Sweep:
    """Create every member run (``queued``) and then the sweep directory, atomically renamed
    into place; on any failure the members created so far are removed again."""
    root = sweeps_root(runs_root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    sweep_id, n = f"{stamp}-{slug(record.name or 'sweep')}", 2
    while (root / sweep_id).exists():
        sweep_id, n = f"{stamp}-{slug(record.name or 'sweep')}-{n}", n + 1
    created: list[Run] = []
    tmp = Path(tempfile.mkdtemp(prefix=".creating-", dir=root))
    try:
        share_like_open(tmp, directory=True)
        for swept, config in members:
            created.append(create_run(runs_root, config, data_dir,
                                      name=f"{record.name} {label(swept)}", sweep=sweep_id,
                                      sweep_values=swept))
        record = dataclasses.replace(record, members=[r.id for r in created],
                                     created=time.time(), host=socket.gethostname())
        write_json_atomic(tmp / SWEEP_FILE, record.to_dict())
        write_json_atomic(tmp / SCHEDULER_FILE, scheduler.to_dict())
        os.rename(tmp, root / sweep_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for run in created:
            shutil.rmtree(run.path, ignore_errors=True)
        raise
    return Sweep(root / sweep_id)


def list_sweeps(runs_root: Path) -> list[Sweep]:
    """Sweeps under the runs root, oldest first."""
    try:
        entries = sorted(p for p in sweeps_root(runs_root).iterdir()
                         if valid_id(p.name) and p.is_dir() and not is_link(p))
    except OSError:
        return []
    return [Sweep(p) for p in entries if (p / SWEEP_FILE).exists()]


def find_sweep(runs_root: Path, ref: str) -> Sweep:
    """A sweep by id, unique id prefix, unique name, or a path (a ref holding ``/``) to one of
    the sweep directories under ``runs_root``; else a one-line SweepError."""
    root = sweeps_root(Path(runs_root).resolve())
    if "/" in ref or is_link(root / ref):
        path = Path(ref).expanduser() if "/" in ref else root / ref
        check_record_dir(path, SWEEP_FILE, "sweep", SweepError)
        if path.resolve().parent != root:
            raise SweepError(f"{ref} is not a sweep directory under {root}; name the sweep by "
                             "its id or name, and choose its runs dir with --runs-dir")
        return Sweep(path.resolve())
    return match_ref(ref, list_sweeps(runs_root), "sweep", root, "bvae sweeps", SweepError)


def delete_sweep(sweep: Sweep, keep_runs: bool = False, never_started: bool = False) -> int:
    """Remove the sweep directory and (unless ``keep_runs``) its members; the number of member
    runs removed. Refused while its scheduler runs or any member has a worker (or, on Slurm, a
    job that may still start), unless ``never_started`` (a sweep whose start failed)."""
    check_record_dir(sweep.path, SWEEP_FILE, "sweep", SweepError)
    if sweep.scheduler_alive():
        raise SweepError(f"sweep {sweep.id} is running; stop it first with "
                         f"'bvae sweep stop {sweep.id}'")
    record = SweepRecord.from_dict(read_json(sweep.record_path) or {})
    members = sweep.deletable_members()
    on_slurm = record.executor == "slurm"

    def busy_run(run: Run) -> bool:
        status = run.status()
        return status.active and bool(status.pid or (on_slurm and not never_started))

    busy = [r.id for r in members if busy_run(r)]
    if busy:
        raise SweepError(f"sweep {sweep.id} has {len(busy)} active member(s) ({busy[0]}...); "
                         f"stop it first with 'bvae sweep stop {sweep.id}'")
    removed = 0
    if not keep_runs:
        for run in members:
            if run.status().active:  # waiting in the queue, no worker: nothing to stop
                run.write_status(state="stopped")
            delete_run(run)
            removed += 1
    trash = sweep.path.parent / f".deleting-{sweep.id}"
    os.rename(sweep.path, trash)
    shutil.rmtree(trash, ignore_errors=True)
    return removed
