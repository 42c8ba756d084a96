"""The local executor: one detached scheduler per sweep places members on this machine's devices.

Where the members go (``--gpus``, ``--per-gpu``, ``--device cpu --slots N``) is decided here when
the sweep is created and kept in sweep.json; the scheduler (:mod:`.scheduler`) does the placing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

from bvae_tui.engine.errors import ConfigError, DeviceError, RunError, SweepError
from bvae_tui.engine.runs.devices import list_gpus
from bvae_tui.engine.runs.launch import stop as stop_worker
from bvae_tui.engine.runs.process import worker_alive
from bvae_tui.engine.runs.store import Run
from bvae_tui.engine.runs.sweeps.flock import is_locked
from bvae_tui.engine.runs.sweeps.members import requeue, unqueue, waiting
from bvae_tui.engine.runs.sweeps.spec import ExecutorSettings
from bvae_tui.engine.runs.sweeps.store import Sweep

START_WAIT_S = 10.0  # how long a start waits for the scheduler to take its lock


def placement(settings: ExecutorSettings, device: str | None) -> tuple[list[str], int, str]:
    """The devices members go on, the members per device, and a note on the choice.

    ``device`` is the config's device field: ``cpu`` (with ``--slots``), ``cuda:N`` (same as
    ``--gpus N``) or ``auto``/None: the GPUs given, else every GPU NVML sees, else the CPU.
    """
    gpus = settings.gpus
    device = (device or "auto").strip().lower()
    if device.startswith("cuda:") and device[5:].isdigit():
        if gpus is not None and gpus != [int(device[5:])]:
            raise ConfigError("give either --gpus or --device cuda:N, not both")
        gpus = [int(device[5:])]
    elif device not in ("auto", "cpu"):
        raise ConfigError(f"--device must be cpu, cuda:N or auto; got {device!r}")
    if device == "cpu" or (gpus is None and not list_gpus()[0]):
        if gpus is not None:
            raise ConfigError("give either --gpus or --device cpu, not both")
        if settings.per_gpu is not None:
            raise ConfigError("--per-gpu is for GPUs; on the CPU use --slots N")
        slots = settings.slots or 1
        why = "" if device == "cpu" else " (no GPU found)"
        return ["cpu"], slots, f"on the CPU{why}, {slots} at once"
    if settings.slots is not None:
        raise ConfigError("--slots is for the CPU; on GPUs use --per-gpu N")
    found, reason = list_gpus()
    known = {g.index for g in found}
    if gpus is None:
        gpus = sorted(known)
    missing = [g for g in gpus if g not in known]
    if missing:
        listed = ", ".join(str(i) for i in sorted(known)) or "none"
        raise DeviceError(f"there is no GPU {missing[0]} ({reason or f'GPUs: {listed}'}); "
                          "'bvae gpus' lists them")
    per = settings.per_gpu or 1
    return [f"cuda:{g}" for g in gpus], per, f"on GPUs {', '.join(map(str, gpus))}, {per} per GPU"


def start_scheduler(sweep: Sweep, poll: float | None = None) -> int:
    """Start the sweep's scheduler detached (own session, output to scheduler.log); its pid once
    it holds the sweep's lock. A SweepError if another scheduler holds it."""
    if is_locked(sweep.lock_path):
        raise SweepError(f"sweep {sweep.id} already has a scheduler (pid "
                         f"{sweep.scheduler().pid}); 'bvae sweep stop {sweep.id}' stops it")
    cmd = [sys.executable, "-m", "bvae_tui.engine.runs.sweeps.scheduler", str(sweep.path)]
    if poll is not None:
        cmd += ["--poll", str(poll)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(sweep.log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                close_fds=True)
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        status = sweep.scheduler()
        if status.pid == proc.pid and status.state in ("running", "stopped", "finished"):
            return proc.pid
        code = proc.poll()
        if code is not None:
            if sweep.scheduler().pid == proc.pid:
                return proc.pid  # it already finished its work
            tail = sweep.log_path.read_text(errors="replace").strip().splitlines()[-1:]
            raise SweepError(f"the scheduler of sweep {sweep.id} exited at once "
                             f"({tail[0] if tail else f'exit code {code}'})")
        time.sleep(0.05)
    return proc.pid  # still importing on a loaded machine; it takes the lock when it can


def stop(sweep: Sweep, wait: float = 0) -> list[Run]:
    """Stop the scheduler, take the waiting members out of the queue and SIGTERM the running
    ones (they checkpoint); the members asked to stop."""
    sweep.write_scheduler(stop_requested=True)
    status = sweep.scheduler()
    if sweep.scheduler_alive(status) and status.pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(status.pid, signal.SIGTERM)
        deadline = time.monotonic() + START_WAIT_S
        while time.monotonic() < deadline and worker_alive(status.pid, status.pid_start):
            time.sleep(0.05)
    asked = []
    for run in sweep.members():
        if not run.path.is_dir():
            continue
        member = run.status()
        if waiting(member) and unqueue(run):
            continue
        if member.active and member.pid:
            try:
                stop_worker(run)
            except RunError:  # it ended meanwhile
                continue
            asked.append(run)
    _wait_for(asked, wait)
    if not sweep.scheduler_alive():
        sweep.write_scheduler(state="stopped")
    return asked


def resume(sweep: Sweep, retry_failed: bool = False, poll: float | None = None) -> list[Run]:
    """Queue the stopped and lost (and with ``retry_failed`` the failed) members again and
    start a scheduler, which adopts the members still running; the members requeued."""
    if sweep.scheduler_alive():
        raise SweepError(f"sweep {sweep.id} is running (scheduler pid {sweep.scheduler().pid})")
    requeued = [run for run in sweep.members()
                if run.path.is_dir() and requeue(run, retry_failed)]
    if requeued:
        sweep.log(f"queued again: {', '.join(r.id for r in requeued)}")
    sweep.write_scheduler(stop_requested=False, state="starting", error=None)
    start_scheduler(sweep, poll)
    return requeued


def resume_member(sweep: Sweep, run: Run, poll: float | None = None) -> None:
    """Put one member back in the queue; start the scheduler if none runs."""
    if not requeue(run, retry_failed=True):
        raise SweepError(f"member {run.id} is {run.status().state}; only a stopped, failed or "
                         "lost member can be resumed")
    if not sweep.scheduler_alive():
        sweep.write_scheduler(stop_requested=False, state="starting", error=None)
        start_scheduler(sweep, poll)


def _wait_for(runs: list[Run], wait: float) -> None:
    deadline = time.monotonic() + wait
    while wait > 0 and time.monotonic() < deadline:
        if not any(r.status().active for r in runs):
            return
        time.sleep(0.1)
