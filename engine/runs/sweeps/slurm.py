"""The Slurm executor: a sweep's members as one Slurm job array, submitted through submitit.

Each array task runs :class:`~bvae_tui.engine.runs.sweeps.slurm_job.SlurmMember` on one member's
run directory; the run directories (on a filesystem the nodes share) stay the only channel, so
`bvae sweep show` and the TUI watch a Slurm sweep like a local one. submitit writes its job
scripts, pickles and Slurm's logs to the sweep's ``slurm/`` folder.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from bvae_tui.engine.errors import ConfigError, SweepError
from bvae_tui.engine.runs.store import Run
from bvae_tui.engine.runs.sweeps.members import (
    cancel,
    import_submitit,
    member_job,
    requeue,
    slurm_job,
    unqueue,
    waiting,
)
from bvae_tui.engine.runs.sweeps.records import SWEEP_FILE
from bvae_tui.engine.runs.sweeps.slurm_job import SlurmMember
from bvae_tui.engine.runs.sweeps.spec import ExecutorSettings, check_one_line, slurm_key
from bvae_tui.engine.runs.sweeps.store import Sweep

MAX_REQUEUES = 20  # time-limit requeues per member (preemptions do not count)
DEFAULT_TIME = 24 * 60  # minutes, when --time is not given (submitit's own default is 5)
SIGNAL_DELAY_S = 120  # submitit's signal comes this long before the limit: time to checkpoint
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
         "PREEMPTED", "BOOT_FAIL", "DEADLINE")
LOCAL_ROOTS = ("/tmp", "/var/tmp", "/dev/shm", "/run")


def check(settings: ExecutorSettings) -> None:
    """submitit installed and Slurm's commands on PATH, else a one-line SweepError."""
    import_submitit()
    missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
    if missing:
        raise SweepError(f"--executor slurm needs Slurm's {' and '.join(missing)} on PATH; run "
                         "it on a cluster login node")


def member_device(settings: ExecutorSettings) -> str:
    """A member's device inside its job: the job's first GPU (Slurm sets which one it is)."""
    return "cuda:0" if (settings.slurm.gpus_per_node or 0) > 0 else "cpu"


def local_filesystem_note(path: Path) -> str | None:
    """One line when ``path`` looks local to this machine (a tmpfs, /tmp), where Slurm's
    nodes could not see the members' run directories."""
    path = Path(path).resolve()
    why = None
    if any(path == Path(r) or Path(r) in path.parents for r in LOCAL_ROOTS):
        why = f"it is under {next(r for r in LOCAL_ROOTS if Path(r) in (path, *path.parents))}"
    else:
        fstype = _filesystem_type(path)
        if fstype in ("tmpfs", "ramfs"):
            why = f"it is on a {fstype}"
    if why is None:
        return None
    return (f"warning: the runs dir {path} looks local to this machine ({why}); Slurm's nodes "
            "need it on a filesystem they share: choose one with --runs-dir")


def _filesystem_type(path: Path) -> str | None:
    try:
        with open("/proc/mounts") as fh:
            mounts = [line.split()[:3] for line in fh]
    except OSError:
        return None
    best, fstype = "", None
    for _, mount, kind in (m for m in mounts if len(m) == 3):
        if (str(path) == mount or str(path).startswith(mount.rstrip("/") + "/")) \
                and len(mount) > len(best):
            best, fstype = mount, kind
    return fstype


def _parameters(sweep: Sweep) -> dict[str, Any]:
    """submitit's parameters for the sweep's jobs, from sweep.json, checked again (a resume
    submits from the file, which may have been edited since the spec was read)."""
    slurm = sweep.record().slurm
    params: dict[str, Any] = {
        "job_name": f"bvae-{sweep.name}"[:64], "time": slurm.get("time") or DEFAULT_TIME,
        "signal_delay_s": SIGNAL_DELAY_S, "stderr_to_stdout": True}
    for key in ("partition", "gpus_per_node", "mem", "array_parallelism"):
        if slurm.get(key) is not None:
            params[key] = slurm[key]
    args = slurm.get("args") or {}
    try:
        if not isinstance(args, dict):
            raise ConfigError(f"args must be a table of sbatch options; got {args!r}")
        for key, value in args.items():
            slurm_key(key)
            check_one_line(str(value), f"Slurm option {key}'s value")
        for key, value in params.items():
            check_one_line(str(value), key)
    except ConfigError as exc:
        raise SweepError(f"sweep {sweep.id}: {SWEEP_FILE} asks Slurm for what it cannot: "
                         f"{exc}; fix the file or create the sweep again") from None
    if args:
        params["additional_parameters"] = {str(k): str(v) for k, v in args.items()}
    return params


def submit(sweep: Sweep, runs: list[Run]) -> dict[str, str]:
    """Submit ``runs`` as one job array (a single job for one run); run id -> job id."""
    submitit = import_submitit()
    executor = submitit.SlurmExecutor(folder=sweep.slurm_dir, max_num_timeout=MAX_REQUEUES)
    try:
        executor.update_parameters(**_parameters(sweep))
    except ValueError as exc:
        raise SweepError(f"Slurm options refused by submitit: {str(exc).splitlines()[0]}") \
            from None
    try:
        jobs = executor.submit_array([SlurmMember(str(run.path)) for run in runs])
    except (RuntimeError, OSError) as exc:  # submitit's FailedJobError carries sbatch's stderr
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SweepError(f"sbatch refused the sweep: {first}") from None
    ids = {run.id: job.job_id for run, job in zip(runs, jobs, strict=True)}
    with sweep.queue_lock():  # a job that has started already wrote its id itself
        for run in runs:
            if waiting(run.status()):
                run.write_status(job=ids[run.id])
    previous = sweep.scheduler()
    sweep.write_scheduler(state="running", jobs={**previous.jobs, **ids}, stop_requested=False,
                          error=None)
    first_id = next(iter(ids.values())).split("_")[0]
    sweep.log(f"submitted {len(runs)} member(s) to Slurm as job {first_id}")
    return ids


def stop(sweep: Sweep, wait: float = 0) -> list[Run]:
    """Cancel every job of the sweep (running workers checkpoint and read ``stopped``)."""
    sweep.write_scheduler(stop_requested=True)
    members = [r for r in sweep.members() if r.path.is_dir()]
    arrays = set()
    asked = []
    for run in members:
        status = run.status()
        job = status.job or member_job(run)
        if not status.active or job is None:
            continue
        arrays.add(job.split("_")[0])
        asked.append(run)
    for array in sorted(arrays):
        cancel(sweep.path, array)
    for run in asked:
        if waiting(run.status()):
            unqueue(run, reason="Slurm job cancelled before it started")
    _wait(asked, wait)
    sweep.write_scheduler(state="stopped")
    return asked


def resume(sweep: Sweep, retry_failed: bool = False) -> list[Run]:
    """Submit again every member that is not finished and has no live job: stopped, lost (and
    with ``retry_failed`` failed) members, and waiting ones whose job Slurm has ended."""
    members = [r for r in sweep.members() if r.path.is_dir()]
    ended = _ended_jobs(sweep, [r for r in members if waiting(r.status())])
    again = []
    for run in members:
        if run.id in ended and waiting(run.status()):
            unqueue(run, reason=f"Slurm job {ended[run.id]} ended before it started")
        if requeue(run, retry_failed):
            again.append(run)
    if not again:
        raise SweepError(f"sweep {sweep.id} has no member to resume")
    submit(sweep, again)
    return again


def resume_member(sweep: Sweep, run: Run) -> None:
    if not requeue(run, retry_failed=True):
        raise SweepError(f"member {run.id} is {run.status().state}; only a stopped, failed or "
                         "lost member can be resumed")
    submit(sweep, [run])


def _ended_jobs(sweep: Sweep, runs: list[Run]) -> dict[str, str]:
    """Run id -> job id of waiting members whose job Slurm reports as over (one sacct call)."""
    jobs = {run.id: member_job(run) for run in runs}
    handles = {rid: slurm_job(sweep.path, jid) for rid, jid in jobs.items() if jid}
    if not handles:
        return {}
    next(iter(handles.values())).watcher.update()
    out = {}
    for rid, job in handles.items():
        state = job.watcher.get_state(job.job_id, mode="cache").split()[0].upper()
        if state in ENDED:
            out[rid] = job.job_id
    return out


def _wait(runs: list[Run], wait: float) -> None:
    deadline = time.monotonic() + wait
    while wait > 0 and time.monotonic() < deadline and any(r.status().active for r in runs):
        time.sleep(0.2)

