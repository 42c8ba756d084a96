"""A sweep member's place in the queue, and its Slurm job: what `bvae stop` and the executors do
to one member.

Everything here takes the sweep's queue lock, which the local scheduler also holds while it takes
a member from the queue, so a stop and a start can never cross. It does not start workers (that
is the executors' job), so the run-level commands can use it without an import cycle.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from bvae_tui.engine.errors import SweepError
from bvae_tui.engine.runs.files import read_json
from bvae_tui.engine.runs.guard import valid_id
from bvae_tui.engine.runs.records import Status
from bvae_tui.engine.runs.store import Run
from bvae_tui.engine.runs.sweeps.flock import locked
from bvae_tui.engine.runs.sweeps.records import (
    QUEUE_LOCK,
    SCHEDULER_FILE,
    SLURM_DIR,
    SWEEPS_DIR,
    SchedulerStatus,
)

NOT_STARTED = "the sweep was stopped before this member started"
RESUMABLE = ("stopped", "lost")


def sweep_dir(run: Run) -> Path | None:
    """The directory of the sweep ``run`` is a member of (None: not a member)."""
    sweep = run.record().sweep
    if sweep is not None and not valid_id(sweep):  # config.json must not name a path
        raise SweepError(f"run {run.id}: its config.json names the sweep {sweep!r}, which is "
                         "not a sweep id; fix config.json or start a new run")
    return run.path.parent / SWEEPS_DIR / sweep if sweep else None


def _queue_lock(run: Run):
    folder = sweep_dir(run)
    if folder is None or not folder.is_dir():
        raise SweepError(f"run {run.id} belongs to no sweep on this runs dir")
    return locked(folder / QUEUE_LOCK)


def waiting(status: Status) -> bool:
    """Queued with no worker yet: waiting for a slot (or for Slurm to start its job)."""
    return status.state == "queued" and not status.pid


def unqueue(run: Run, reason: str = NOT_STARTED) -> bool:
    """Take a waiting member out of the queue (it reads ``stopped``); False if it has a worker
    by now (stop that instead)."""
    with _queue_lock(run):
        status = run.status()
        if not waiting(status):
            return False
        run.write_status(state="stopped", error=reason, phase=None)
        return True


def requeue(run: Run, retry_failed: bool = False) -> bool:
    """Put a stopped or lost (or, with ``retry_failed``, failed) member back in the queue; it
    resumes from its checkpoint. False when it is finished, active or failed."""
    with _queue_lock(run):
        status = run.status()
        states = (*RESUMABLE, "failed") if retry_failed else RESUMABLE
        if status.state not in states:
            return False
        run.write_status(state="queued", pid=None, pid_start=None, host=None, phase=None,
                         error=None, job=None)
        return True


def stop_member(run: Run, status: Status, wait: float = 0) -> bool:
    """Stop a sweep member the way its executor needs: a Slurm member's job is cancelled, a
    local member waiting for a slot leaves the queue. False: a local member with a worker,
    which the caller stops like any run."""
    job = status.job or member_job(run)
    if job is not None:
        cancel_job(run, job, wait)
        return True
    return waiting(status) and unqueue(run)


def member_job(run: Run) -> str | None:
    """The Slurm job id a member was last submitted under (None: not on Slurm)."""
    folder = sweep_dir(run)
    if folder is None:
        return None
    return SchedulerStatus.from_dict(read_json(folder / SCHEDULER_FILE)).jobs.get(run.id)


# --------------------------------------------------------------------------------------------
# Slurm jobs, through submitit


def import_submitit():
    """The submitit module, or a one-line SweepError saying how to install it."""
    try:
        import submitit
    except ImportError:
        raise SweepError("the Slurm executor needs submitit: pip install 'bvae-tui[slurm]' "
                         "(or pip install submitit)") from None
    return submitit


def slurm_job(folder: Path, job_id: str):
    """submitit's handle on a Slurm job submitted from the sweep directory ``folder``."""
    import_submitit()
    from submitit.slurm.slurm import SlurmJob

    return SlurmJob(folder=folder / SLURM_DIR, job_id=job_id)


def cancel(folder: Path, job_id: str) -> None:
    """scancel a job (or a whole array), through submitit; a one-line SweepError if it fails."""
    try:
        slurm_job(folder, job_id).cancel(check=True)
    except OSError as exc:
        raise SweepError(f"cannot run scancel ({exc.strerror or exc}); is this a Slurm "
                         "login node?") from None
    except subprocess.CalledProcessError as exc:
        raise SweepError(f"scancel {job_id} failed (exit code {exc.returncode})") from None


def cancel_job(run: Run, job_id: str, wait: float = 0) -> None:
    """Cancel a member's Slurm job (`bvae stop` on a Slurm member). Its worker gets SIGTERM
    through the job and checkpoints; a job that had not started leaves the member ``stopped``."""
    folder = sweep_dir(run)
    cancel(folder or run.path, job_id)
    if waiting(run.status()):
        unqueue(run, reason=f"Slurm job {job_id} cancelled before it started")
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and run.status().active:
        time.sleep(0.2)
