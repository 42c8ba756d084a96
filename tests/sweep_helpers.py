"""Helpers shared by the sweep tests (not a test module): tiny specs, waiting, clean-up."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bvae_tui.engine.runs.lock import lock_holder
from bvae_tui.engine.runs.process import worker_alive
from bvae_tui.engine.runs.store import Run
from bvae_tui.engine.runs.sweeps.spec import ExecutorSettings, SweepSpec, parse_field_values
from bvae_tui.engine.runs.sweeps.store import Sweep, list_sweeps

# What every test member trains: a few steps of a tiny model on dsprites-mini.
TINY = {"dataset": "dsprites-mini", "z_dim": "4", "batch_size": "8", "preview_every": "0"}


def tiny_options(iterations: int | str, every: int) -> list[str]:
    """The `bvae sweep` options of :data:`TINY` members (``iterations`` may be a list)."""
    return ["--dataset", "dsprites-mini", "--z-dim", "4", "--batch-size", "8",
            "--preview-every", "0", "--iterations", str(iterations),
            "--log-every", str(every), "--checkpoint-every", str(every)]


def tiny_spec(iterations: int, every: int, executor: ExecutorSettings | None = None,
              **values: str) -> SweepSpec:
    raw = {**TINY, "iterations": str(iterations), "log_every": str(every),
           "checkpoint_every": str(every), **values}
    return SweepSpec(values=parse_field_values(raw), executor=executor or ExecutorSettings())


def wait_for(condition: Callable[[], Any], timeout: float, what: str,
             every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def freeze(run: Run) -> int:
    """SIGSTOP the run's worker, so that it cannot finish while a test sets the scene (on any
    machine, however fast); :func:`thaw` lets it go on. Returns its pid."""
    pid = run.status().pid
    assert pid, run.id
    os.kill(pid, signal.SIGSTOP)
    return pid


def thaw(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


def running(run: Run, past_checkpoint: bool = False) -> bool:
    status = run.status()
    return status.state == "running" and (not past_checkpoint or run.last_checkpoint.exists())


def rows(run: Run) -> list[int]:
    return [r.iter for r in run.metrics()]


def starts(run: Run) -> tuple[int, int]:
    """(fresh starts, resumes) of a run's worker, from the lines launch writes to worker.log."""
    lines = [ln for ln in run.log_path.read_text().splitlines() if ln.startswith("--- ")]
    return (sum(ln.endswith(" start") for ln in lines),
            sum(ln.endswith(" resume") for ln in lines))


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals that overlap at one moment."""
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals],
                    key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def lifetime(run: Run) -> tuple[float, float]:
    """From the worker's start (``launched``) to its last status write."""
    status = run.raw_status()
    assert status.launched and status.updated
    return status.launched, status.updated


def kill_everything(runs_dir: Path) -> None:
    """SIGKILL every scheduler and worker still alive under ``runs_dir`` (a test's clean-up)."""
    for sweep in list_sweeps(runs_dir):
        status = sweep.scheduler()
        if worker_alive(status.pid, status.pid_start):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(status.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            for run in sweep.members():
                pid = lock_holder(run) or run.raw_status().pid
                if pid and pid != os.getpid():
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)


def member_device(sweep: Sweep, run: Run) -> str:
    """The slot the scheduler started ``run`` on, from its log."""
    for line in sweep.log_path.read_text().splitlines():
        if f"started {run.id} on " in line:
            return line.split(f"started {run.id} on ", 1)[1].split()[0]
    raise AssertionError(f"{run.id} was never started by {sweep.id}")
