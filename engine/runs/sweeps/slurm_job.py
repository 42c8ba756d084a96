"""What one Slurm job of a sweep runs: the worker entry point on one member's run directory.

submitit pickles a :class:`SlurmMember` (by reference to this module, so the nodes need
bvae-tui installed, as they do to train) and calls it inside the job. It starts the same
detached worker as ``bvae train --detach`` and waits for it:

- ``scancel`` (``bvae stop``): the job gets SIGTERM, which is passed on to the worker; it
  checkpoints and the member reads ``stopped``.
- A time limit or a preemption: Slurm sends the job submitit's signal (``--signal``), submitit
  calls :meth:`SlurmMember.checkpoint`, which stops the worker the same way, leaves the member
  queued and hands submitit the same job to requeue. When it starts again the worker resumes from
  the checkpoint, and metrics rows after it are dropped first, so they continue without
  duplicates.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from bvae_tui.engine.runs.launch import launch
from bvae_tui.engine.runs.store import Run
from bvae_tui.engine.runs.sweeps.flock import locked
from bvae_tui.engine.runs.sweeps.members import sweep_dir
from bvae_tui.engine.runs.sweeps.records import QUEUE_LOCK

STOP_WAIT_S = 300.0  # Slurm kills the job after its own grace period anyway
# The queue lock is held for milliseconds; on a cluster's shared filesystem a lock can be slow, so
# a job waits longer than a command would before it fails with the holder's name.
QUEUE_WAIT_S = 300.0


class SlurmMember:
    """A callable for submitit: train one member, continuing from its checkpoint if it has one."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self._pid: int | None = None
        self._stop = False

    def __getstate__(self) -> dict[str, Any]:
        return {"run_dir": self.run_dir}  # a requeued job starts its own worker

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.run_dir, self._pid, self._stop = state["run_dir"], None, False

    @property
    def run(self) -> Run:
        return Run(Path(self.run_dir))

    def __call__(self) -> str:
        run = self.run
        status = run.status()
        if status.state == "finished":  # e.g. requeued just as it finished
            return "finished"
        resume = (run.last_checkpoint.exists() or bool(status.iteration)
                  or status.launched is not None)
        signal.signal(signal.SIGTERM, self._pass_on)  # scancel: stop with a checkpoint
        with self._queue_lock(run):  # the submitter writes job ids under it too
            run.write_status(job=_job_id())
            self._pid = launch(run, resume=resume)
        if self._stop:  # cancelled while the worker was being started
            self._pass_on(signal.SIGTERM, None)
        code = self._wait(None)
        state = run.raw_status()
        if self._stop and state.state == "stopped" and _requeued_by_slurm():
            # `scontrol requeue` and a requeue on preemption or node failure send the same
            # SIGTERM as scancel; the job restarts later (after Slurm's two-minute hold), so the
            # member is still queued on it, not stopped (a `bvae sweep resume` would submit it
            # twice).
            run.write_status(state="queued", pid=None, pid_start=None, host=None, error=None,
                             phase="requeued by Slurm (scontrol requeue or preemption)")
            return "requeued"
        if state.state == "failed":
            raise RuntimeError(f"run {run.id} failed: {state.error}")
        if code not in (0, None) and state.state not in ("finished", "stopped"):
            raise RuntimeError(f"worker of {run.id} exited with code {code}")
        return state.state or "failed"

    @staticmethod
    def _queue_lock(run: Run) -> Any:
        folder = sweep_dir(run)
        return (locked(folder / QUEUE_LOCK, QUEUE_WAIT_S) if folder
                else contextlib.nullcontext())

    def checkpoint(self) -> Any:
        """submitit's hook for a time limit or preemption: stop the worker (it checkpoints),
        leave the member queued, and return this job for submitit to requeue."""
        from submitit.helpers import DelayedSubmission

        if self._pid is not None:
            self._pass_on(signal.SIGTERM, None)
            self._wait(STOP_WAIT_S)
        run = self.run
        if run.raw_status().state != "finished":
            run.write_status(state="queued", pid=None, pid_start=None, host=None, error=None,
                             phase="requeued by Slurm (time limit or preemption)")
        return DelayedSubmission(self)

    def _pass_on(self, signum: int, frame: object) -> None:
        self._stop = True
        if self._pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGTERM)

    def _wait(self, timeout: float | None) -> int | None:
        """Wait for the worker (a child of this process); its exit code, None if unknown.
        Polls rather than blocking, so that the signal handlers can run meanwhile."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._pid is not None:
            try:
                pid, status = os.waitpid(self._pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere
                self._pid = None
                return None
            if pid:
                self._pid = None
                return os.waitstatus_to_exitcode(status)
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(0.2)
        return None


def _requeued_by_slurm() -> bool:
    """Whether Slurm has requeued this job since it started: its restart count went up (a
    cancelled job keeps its count). False when scontrol cannot say."""
    # By its array task id: an array's first task has the array's id as its own job id, and
    # `scontrol show job` of that id lists every task of the array (another one's restarts).
    job = _job_id()
    if not job:
        return False
    try:
        out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    line = next(iter(out.splitlines()), "")
    fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
    try:
        return int(fields.get("Restarts", "0")) > int(os.environ.get("SLURM_RESTART_COUNT",
                                                                     "0"))
    except ValueError:
        return False


def _job_id() -> str | None:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")
