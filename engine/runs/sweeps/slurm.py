"""The Slurm executor: a sweep's members as one Slurm job array, submitted through submitit.

Each array task runs :class:`~bvae_tui.engine.runs.sweeps.slurm_job.SlurmMember` on one member's
run directory; the run directories (on a filesystem the nodes share) stay the only channel, so
`bvae sweep show` and the TUI watch a Slurm sweep like a local one. submitit writes its job
scripts, pickles and Slurm's logs to the sweep's ``slurm/`` folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bvae_tui.engine.errors import ConfigError, SweepError
from bvae_tui.engine.runs.files import open_regular
from bvae_tui.engine.runs.store import Run
from bvae_tui.engine.runs.sweeps.members import (
    RESUMABLE,
    cancel,
    import_submitit,
    member_job,
    requeue,
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
SLURM_CHECK_S = 30  # slurmctld's PERIODIC_TIMEOUT: a limit's signal comes up to this much early
CHECKPOINT_S = 10  # the least warning a member gets: a checkpoint takes well under a second
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
         "PREEMPTED", "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT")
# A job Slurm will still run (a requeued one waits, PENDING (BeginTime), for the credential
# lifetime first: AuthInfo cred_expire, two minutes by default). Not
# COMPLETING: squeue shows a cancelled job so too, for a few seconds.
LIVE = ("PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING",
        "SUSPENDED", "CONFIGURING")
ACCOUNTING_OFF = "Slurm accounting is off"
# What to do about sbatch's refusals, by a word of its error (lowercase).
SBATCH_FIXES = (
    ("partition", "choose one that 'sinfo -s' lists with --partition"),
    ("gres", "this cluster has no GPUs to give: leave out --gpus-per-node or choose a GPU "
             "partition with --partition"),
    ("memory", "ask for less with --mem (sinfo -o '%P %m' shows the nodes' memory)"),
    ("time limit", "ask for a shorter --time (sinfo -s shows each partition's limit)"),
    ("account", "name an account you belong to (sacctmgr show assoc user=$USER)"),
    ("node configuration", "ask for resources a node has (sinfo -N -l lists them)"),
)
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


def signal_delay(minutes: int) -> int:
    """Seconds before the time limit that Slurm signals the job to checkpoint.

    slurmctld checks the limits every 30 s (PERIODIC_TIMEOUT) and signals a job at the first
    check that finds less than the delay plus those 30 s left, so the signal comes anywhere up
    to 30 s before the delay asked. With a 1-minute limit and a 30 s delay that is the first
    check after the start, which may be in the first second: the member is requeued before it
    trains one step, and again at every start. So the earliest signal is kept at half the
    limit or later (``limit / 2 - 30``), never less than CHECKPOINT_S (time to checkpoint) and
    never more than SIGNAL_DELAY_S."""
    slack = minutes * 60 // 2 - SLURM_CHECK_S
    return int(min(SIGNAL_DELAY_S, max(slack, CHECKPOINT_S)))


def _parameters(sweep: Sweep) -> dict[str, Any]:
    """submitit's parameters for the sweep's jobs, from sweep.json, checked again (a resume
    submits from the file, which may have been edited since the spec was read)."""
    slurm = sweep.record().slurm
    minutes = slurm.get("time") or DEFAULT_TIME
    params: dict[str, Any] = {
        "job_name": f"bvae-{sweep.name}"[:64], "time": minutes,
        "signal_delay_s": signal_delay(minutes), "stderr_to_stdout": True}
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
    with _stderr_captured() as stderr:  # submitit lets sbatch write to our stderr
        try:
            jobs = executor.submit_array([SlurmMember(str(run.path)) for run in runs])
        except (RuntimeError, OSError) as exc:  # submitit's FailedJobError
            refused = exc
        else:
            refused = None
        said = stderr.read() if refused is not None else ""
    if refused is not None:
        raise SweepError(sbatch_refusal(said, refused)) from None
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
    states = (*RESUMABLE, "failed") if retry_failed else RESUMABLE
    live = _live_jobs(sweep, [r for r in members if r.status().state in states])
    again, adopted = [], []
    for run in members:
        if run.id in ended and waiting(run.status()):
            unqueue(run, reason=f"Slurm job {ended[run.id]} ended before it started")
        if run.id in live and requeue(run, retry_failed):
            # Slurm requeued its job itself: wait for that job rather than submit a second one.
            run.write_status(job=live[run.id], phase="requeued by Slurm")
            adopted.append(run)
        elif requeue(run, retry_failed):
            again.append(run)
    if adopted:
        sweep.log(f"{len(adopted)} member(s) wait for the jobs Slurm requeued: "
                  + ", ".join(live[r.id] for r in adopted))
        # Not `scontrol update StartTime=now`: Slurm holds a requeued job for the credential
        # lifetime (AuthInfo cred_expire, 120 s by default) because the node refuses the same
        # job id until its revoked credential expires; started sooner, the job FAILS at launch
        # ("Job credential revoked") and the member never runs.
        sweep.write_scheduler(state="running", stop_requested=False, error=None)
    if not again and not adopted:
        raise SweepError(f"sweep {sweep.id} has no member to resume")
    if again:
        submit(sweep, again)
    return again + adopted


def resume_member(sweep: Sweep, run: Run) -> None:
    if not requeue(run, retry_failed=True):
        raise SweepError(f"member {run.id} is {run.status().state}; only a stopped, failed or "
                         "lost member can be resumed")
    submit(sweep, [run])


def _ended_jobs(sweep: Sweep, runs: list[Run]) -> dict[str, str]:
    """Run id -> job id of the members in ``runs`` whose Slurm job is over."""
    jobs = {run.id: member_job(run) for run in runs}
    states = job_states(sweep, [j for j in jobs.values() if j])
    return {rid: jid for rid, jid in jobs.items() if jid and states.get(jid, "") in ENDED}


def _live_jobs(sweep: Sweep, runs: list[Run]) -> dict[str, str]:
    """Run id -> job id of the members in ``runs`` whose Slurm job is still queued or running
    (Slurm requeued it: a node failure, a preemption), so that resuming must not submit them
    again."""
    jobs = {run.id: (run.raw_status().job or member_job(run)) for run in runs}
    states = job_states(sweep, [j for j in jobs.values() if j])
    return {rid: jid for rid, jid in jobs.items() if jid and states.get(jid, "") in LIVE}


def job_states(sweep: Sweep, job_ids: list[str]) -> dict[str, str]:
    """Job id (``123_4`` for an array task) -> Slurm's state word, for the jobs Slurm knows.

    squeue is the controller's view now: it lists every queued or running job, and ended ones
    for MinJobAge after they end. sacct (where the cluster keeps accounting) remembers the
    older ones, but lags behind the controller and, for a job Slurm requeued, lists the run
    that ended too; so squeue's word wins. Without accounting (no slurmdbd: sacct fails) a job
    that squeue no longer lists is over (CANCELLED here, which is all a resume needs)."""
    if not job_ids:
        return {}
    arrays = sorted({j.split("_")[0] for j in job_ids})
    now = _squeue(arrays)
    history = _sacct(arrays)
    if history is None:
        _note_no_accounting(sweep)
        if now is None:
            return {}
        history = {j: "CANCELLED" for j in job_ids}
    return {**history, **(now or {})}


def queue_states(sweep: Sweep, runs: list[Run]) -> dict[str, str]:
    """Run id -> what Slurm says of each member's job while it waits or runs, e.g.
    ``PENDING (JobArrayTaskLimit)``: squeue's state and reason (for `bvae sweep show`,
    `bvae sweeps` and the TUI). Empty when squeue cannot say."""
    jobs = {run.id: (run.raw_status().job or member_job(run)) for run in runs}
    arrays = sorted({j.split("_")[0] for j in jobs.values() if j})
    if not arrays:
        return {}
    out = _slurm_command(["squeue", "-h", "--array", "-o", "%i|%T|%r", "-j", ",".join(arrays)])
    if out is None:
        return {}
    said = {}
    for line in out.splitlines():
        job, state, reason = (line.strip().split("|") + ["", ""])[:3]
        said[job] = f"{state} ({reason})" if reason and reason != "None" else state
    return {rid: said[jid] for rid, jid in jobs.items() if jid in said}


def queue_summary(states: dict[str, str]) -> str:
    """``2 RUNNING, 2 PENDING (JobArrayTaskLimit)``: how many members' jobs are in each of
    :func:`queue_states`'s states."""
    counts: dict[str, int] = {}
    for state in states.values():
        counts[state] = counts.get(state, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


def _sacct(arrays: list[str]) -> dict[str, str] | None:
    out = _slurm_command(["sacct", "-n", "-X", "--parsable2", "-o", "JobID,State", "-j",
                          ",".join(arrays)])
    if out is None:
        return None
    states = {}
    for line in out.splitlines():
        fields = line.split("|")
        if len(fields) >= 2 and fields[0] and fields[1]:
            states[fields[0]] = fields[1].split()[0].upper()  # "CANCELLED by 0": CANCELLED
    return states


def _squeue(arrays: list[str]) -> dict[str, str] | None:
    out = _slurm_command(["squeue", "-h", "--array", "--states=all", "-o", "%i|%T",
                          "-j", ",".join(arrays)])
    if out is None:  # squeue refuses a list where no id is known any more
        out = _slurm_command(["squeue", "-h", "--array", "--states=all", "-o", "%i|%T"])
    if out is None:
        return None
    states = {}
    for line in out.splitlines():
        job, _, state = line.strip().partition("|")
        if job.split("_")[0] in arrays and state:
            states[job] = state.upper()
    return states


def _slurm_command(argv: list[str]) -> str | None:
    """A Slurm query's output, None when it fails (sacct without accounting)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


_TOLD: set[Path] = set()  # the logs this process has already looked in or written to


def _note_no_accounting(sweep: Sweep) -> None:
    """Say once in scheduler.log that the cluster has no accounting (and what is used). The
    log is looked in once per process, not at every poll, and only as a regular file and up
    to a bound: it lives in a shared runs dir, where it may be a FIFO or huge."""
    if sweep.log_path in _TOLD:
        return
    _TOLD.add(sweep.log_path)
    if not _log_says(sweep.log_path, ACCOUNTING_OFF.encode()):
        sweep.log(f"{ACCOUNTING_OFF}: sacct fails on this cluster, so ended jobs are found "
                  "with squeue instead")


def _log_says(path: Path, text: bytes, limit: int = 16 << 20) -> bool:
    """Whether the first ``limit`` bytes of the log at ``path`` hold ``text``."""
    fh = open_regular(path)
    if fh is None:
        return False
    with fh:
        tail, read = b"", 0
        while read < limit and (chunk := fh.read(1 << 16)):
            if text in tail + chunk:
                return True
            tail, read = chunk[-len(text):], read + len(chunk)
    return False


def sbatch_refusal(stderr: str, exc: BaseException) -> str:
    """One line for a submission sbatch refused: Slurm's own error, quoted, and the fix."""
    errors = [ln.split("error:", 1)[1].strip() for ln in stderr.splitlines() if "error:" in ln]
    if not errors:
        errors = [(str(exc).strip().splitlines() or [type(exc).__name__])[0]]
    said = errors[0]
    lowered = " ".join(errors).lower()
    fix = next((f for key, f in SBATCH_FIXES if key in lowered), "fix the option it names")
    return f"sbatch refused the sweep: \"{said}\"; {fix}; nothing was submitted"


@contextlib.contextmanager
def _stderr_captured():
    """File descriptor 2 into a temporary file for the block (sbatch is a child process that
    writes there directly); the file, rewound, for the caller to read."""
    with tempfile.TemporaryFile(mode="w+") as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            yield _Rewound(tmp)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


class _Rewound:
    """What :func:`_stderr_captured` yields: read() gives everything written so far."""

    def __init__(self, fh: Any):
        self._fh = fh

    def read(self) -> str:
        self._fh.flush()
        self._fh.seek(0)
        return self._fh.read()


def _wait(runs: list[Run], wait: float) -> None:
    deadline = time.monotonic() + wait
    while wait > 0 and time.monotonic() < deadline and any(r.status().active for r in runs):
        time.sleep(0.2)

