"""Launching and controlling detached workers: the checks made before a run exists, start, stop.

:func:`launch` starts the worker (:mod:`bvae_tui.engine.runs.worker`) in a new process session
(stdin from /dev/null, stdout and stderr appended to the run's ``worker.log``), so closing the
launching terminal or dropping SSH does not stop it; :func:`stop` sends it SIGTERM, on which it
checkpoints and marks the run ``stopped``. ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` makes ``cuda:N`` the
GPU that NVML (and the device picker) calls N.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from bvae_tui.datasets.loader import check_available
from bvae_tui.datasets.registry import data_root, get_spec
from bvae_tui.engine.config import TrainConfig
from bvae_tui.engine.errors import ConfigError, RunError
from bvae_tui.engine.runs.devices import gpu_capability, resolve_device
from bvae_tui.engine.runs.guard import open_append
from bvae_tui.engine.runs.lock import RunLock, lock_holder
from bvae_tui.engine.runs.process import process_start_time
from bvae_tui.engine.runs.store import Run, create_run, runs_root
from bvae_tui.engine.train.precision import check_amp
from bvae_tui.engine.train.process import worker_env


def check_launch(cfg: TrainConfig, data_dir: str | os.PathLike | None = None) -> str:
    """Validate everything a new run needs BEFORE its directory exists; return the device.

    Raises a one-line :class:`UserError`: bad option values, an unknown dataset, a batch larger
    than the dataset (when its size is known without preparing it), data that is neither
    prepared nor obtainable offline, a GPU that does not exist or no NVIDIA driver for one.
    Preparing the data itself (generating dSprites, decoding a folder) is the worker's job.
    """
    cfg.validate()
    spec = get_spec(cfg.dataset)
    if cfg.eval_at_end and not spec.has_factors:
        raise ConfigError(f"--eval-at-end needs ground-truth factors, which '{cfg.dataset}' does "
                          "not have; drop --eval-at-end or use dsprites / shapes3d")
    # Missing files, a damaged cache or a bad folder: an error now, not a failed run later.
    # The count is that of the data training will see (None: it is built first), so a folder
    # that changed since it was prepared is not judged by its old size.
    count = check_available(cfg.dataset, data_dir, cfg.image_size)
    if count is None and spec.factor_sizes:  # a full factor grid: its size is its product
        count = math.prod(spec.factor_sizes)
    if count is not None and cfg.batch_size > count:
        raise ConfigError(f"--batch-size {cfg.batch_size} is larger than dataset "
                          f"'{cfg.dataset}' ({count} images); choose at most {count}")
    device = resolve_device(cfg.device)
    if cfg.amp == "bf16":  # (only then: NVML again for the GPU's compute capability)
        check_amp(cfg.amp, device, gpu_capability(device))
    return device


def start_run(cfg: TrainConfig, runs_dir: str | os.PathLike | None = None,
              data_dir: str | os.PathLike | None = None, name: str | None = None,
              detach: bool = True, checked: bool = False) -> Run:
    """Validate, create the run directory, and (``detach``) launch its worker.

    Nothing is created when validation fails. Without ``detach`` the caller trains in its own
    process with :func:`bvae_tui.engine.train.trainer.train`. ``checked``: the caller has just
    run :func:`check_launch` on the same arguments (it is not repeated: NVML and the data's
    checks are part of the time to the first step).
    """
    if not checked:
        check_launch(cfg, data_dir)
    run = create_run(runs_root(runs_dir), cfg, data_root(data_dir), name=name)
    if detach:
        try:
            launch(run)
        except OSError as exc:  # e.g. the interpreter vanished: leave a clear failed run
            run.write_status(state="failed", error=f"could not start the worker ({exc})")
            raise RunError(f"could not start the worker for {run.id} ({exc})") from None
    return run


def worker_command(run: Run, resume: bool = False, lock_fd: int | None = None,
                   changes: dict[str, Any] | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "bvae_tui.engine.runs.worker", str(run.path)]
    if lock_fd is not None:
        cmd += ["--lock-fd", str(lock_fd)]
    for name, value in (changes or {}).items():  # --lr, --device: see resume.CHANGEABLE
        cmd += [f"--{name}", str(value)]
    return [*cmd, "--resume"] if resume else cmd


def launch(run: Run, resume: bool = False, lock: RunLock | None = None,
           extra_env: dict[str, str] | None = None,
           changes: dict[str, Any] | None = None) -> int:
    """Start the worker for ``run`` detached from this process; return its pid at once.

    The run's lock (``lock``, held by the caller, else taken here: a :class:`RunLocked` error
    naming the holder if another writer has it) passes to the worker, so no other launcher can
    start a second worker on the run in between. The caller's copy is closed on return.
    ``extra_env``: variables for the worker (a sweep shares the CPU cores among its members).
    ``changes``: new ``lr`` / ``device`` for a resume, recorded by the worker.
    """
    with lock or RunLock(run) as held:
        return _spawn(run, resume, held, extra_env or {}, changes)


def _spawn(run: Run, resume: bool, lock: RunLock, extra_env: dict[str, str],
           changes: dict[str, Any] | None) -> int:
    env = dict(os.environ)
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    env["PYTHONUNBUFFERED"] = "1"  # worker.log shows progress as it happens
    env.update(worker_env())
    env.update(extra_env)
    with open_append(run.log_path) as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} "
                  f"{'resume' if resume else 'start'}\n".encode())
        log.flush()
        fd = lock.fileno()
        proc = subprocess.Popen(worker_command(run, resume, fd, changes), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, close_fds=True, pass_fds=(fd,))
    lock.set_holder(proc.pid)  # the worker writes it too; `bvae stop` must not signal us
    # Record the pid at once so the run reads 'queued' (not 'lost') while the worker imports
    # torch; the worker overwrites it with 'running'. Skip if it already has (a fast start).
    if run.raw_status().pid != proc.pid:
        run.write_status(state="queued", pid=proc.pid, pid_start=process_start_time(proc.pid),
                         host=socket.gethostname(), error=None, launched=time.time())
    return proc.pid


def stop(run: Run, wait: float = 0) -> None:
    """Ask the process that holds the run (its lock; else the pid of an active status) to stop
    with SIGTERM; wait up to ``wait`` seconds for it to finish."""
    holder = lock_holder(run)
    status = run.status()
    if status.active and run.record().sweep:
        # A sweep member waiting in its queue leaves it; one on Slurm has its job cancelled.
        from bvae_tui.engine.runs.sweeps.members import stop_member

        if stop_member(run, status, wait):
            return
        status = run.status()
    if not holder and not status.active:
        raise RunError(f"run {run.id} is not running (it is {status.state})")
    pid = holder or status.pid
    if pid is None:
        raise RunError(f"run {run.id} has no worker yet (it is being started); try again soon")
    if pid == os.getpid():
        raise RunError(f"run {run.id} is trained by this process; press Ctrl-C to stop it")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        raise RunError(f"run {run.id} is not running (its worker is gone)") from None
    except PermissionError:
        raise RunError(f"not allowed to signal the worker of run {run.id} (pid {pid}); "
                       "it belongs to another user") from None
    deadline = time.monotonic() + wait
    while wait > 0 and time.monotonic() < deadline:
        if lock_holder(run) is None and not run.status().active:
            return
        time.sleep(0.1)
