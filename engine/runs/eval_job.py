"""Detached evaluations: `bvae eval RUN --detach` and the TUI's evaluate action.

:func:`launch_eval` checks each run (a checkpoint, ground-truth factors, a writable directory,
not being trained, not already being evaluated), takes its evaluation lock (``.eval.lock``, the
:class:`EvalLock`), writes ``eval_job.json`` as ``queued`` and starts ONE process in a new
session for all of them (``python -m bvae_tui.engine.runs.eval_job``), so closing the TUI or
dropping SSH does not stop it and a batch of runs is scored one after another, not all at once
on a small machine. The locks pass to that process, which releases each run's when it is done
with it.

The process scores each run with ``evaluate_run``, the same code as `bvae eval`, so eval.json is
written exactly as the CLI writes it (and only at the end: a failed evaluation leaves the old
one). It writes its progress into ``eval_job.json`` (:class:`EvalJob`), which the runs table,
`bvae runs` and the monitor read through :mod:`.eval_progress`. Its
stdout and stderr go to each run's worker.log while it scores that run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bvae_tui.engine.errors import RunError
from bvae_tui.engine.runs.eval_progress import read_job, with_liveness
from bvae_tui.engine.runs.files import write_json_atomic
from bvae_tui.engine.runs.guard import check_record_dir, open_append
from bvae_tui.engine.runs.lock import RunLock, RunLocked, check_writable, lock_holder
from bvae_tui.engine.runs.process import process_start_time
from bvae_tui.engine.runs.records import (
    CONFIG_FILE,
    EVAL_JOB_FILE,
    EVAL_LOCK_FILE,
    EvalJob,
)
from bvae_tui.engine.runs.store import Run
from bvae_tui.errors import UserError, brief

PROGRESS_EVERY_S = 0.5  # encoding reports every batch; the file is rewritten at most this often


class EvalLock(RunLock):
    """The lock of a run's detached evaluation: one at a time per run (training has its own)."""

    FILE = EVAL_LOCK_FILE

    def acquire(self) -> EvalLock:
        try:
            super().acquire()
        except RunLocked as exc:
            raise RunError(f"run {self.path.name} is already being evaluated (pid {exc.pid}); "
                           "wait for it to finish (the runs table shows its progress)") from None
        return self

    def adopt(self, fd: int) -> EvalLock:
        try:
            super().adopt(fd)
        except RunLocked as exc:
            raise RunError(f"run {self.path.name} is already being evaluated "
                           f"(pid {exc.pid})") from None
        return self


def job_path(run: Run) -> Path:
    return run.path / EVAL_JOB_FILE


def job_status(run: Run) -> EvalJob | None:
    return with_liveness(read_job(job_path(run)))


# --------------------------------------------------------------------------------------------
# Launching


def check_evaluable(run: Run) -> None:
    """A one-line :class:`RunError` unless a detached evaluation of ``run`` may start now."""
    from bvae_tui.datasets.registry import get_spec
    from bvae_tui.engine.runs.recovery import usable_checkpoint

    check_record_dir(run.path, CONFIG_FILE, "run")
    cfg = run.config
    if not get_spec(cfg.dataset).has_factors:
        raise RunError(f"run {run.id} trained on '{cfg.dataset}', which has no ground-truth "
                       "factors to score against; use 'bvae eval --udr' over seeds instead")
    state = run.status().state
    if lock_holder(run) is not None or run.status().active:
        raise RunError(f"run {run.id} is {state if state == 'queued' else 'training'}; "
                       f"evaluate it when it ends, or stop it first (s, or 'bvae stop {run.id}')")
    if usable_checkpoint(run).path is None:
        raise RunError(f"run {run.id} has no readable checkpoint to score; resume or train it "
                       "first")
    check_writable(run, "write eval.json in")


@dataclasses.dataclass
class EvalLaunch:
    """What :func:`launch_eval` did: the process, the runs it scores, the runs it left out."""

    pid: int
    runs: list[Run]
    refused: list[str]  # one line per run left out, saying why


def launch_eval(runs: list[Run], fast: bool = False, metrics: Any = None, seed: int = 0,
                device: str | None = None) -> EvalLaunch:
    """Start one detached process scoring ``runs`` in order; return at once.

    A run that cannot be evaluated now is left out with its reason; when none can, the reason
    (the first one, with a count) is a :class:`RunError` and nothing starts.
    """
    from bvae_tui.engine.analysis.metrics import parse_metrics

    names = parse_metrics(metrics)  # a bad name: an error before anything is locked
    locks: list[tuple[Run, EvalLock]] = []
    refused: list[str] = []
    try:
        for run in runs:
            try:
                check_evaluable(run)
                lock = EvalLock(run).acquire()
            except UserError as exc:
                refused.append(str(exc))
                continue
            locks.append((run, lock))
        if not locks:
            if not refused:
                raise RunError("no runs to evaluate")
            more = f" (and {len(refused) - 1} more run(s) that cannot be scored now)" \
                if len(refused) > 1 else ""
            raise RunError(refused[0] + more)
        now = time.time()
        for run, _ in locks:
            write_job(run, EvalJob(state="queued", fast=fast, metrics=names, seed=seed, done=0,
                                   total=len(names), created=now))
        pid = _spawn(locks, fast, names, seed, device)
    finally:
        for _, lock in locks:
            lock.release()  # the process holds its own copies of the descriptors
    return EvalLaunch(pid, [run for run, _ in locks], refused)


def write_job(run: Run, job: EvalJob) -> None:
    write_json_atomic(job_path(run), dataclasses.replace(job, updated=time.time()).to_dict())


def eval_command(locks: list[tuple[Run, EvalLock]], fast: bool, names: list[str], seed: int,
                 device: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "bvae_tui.engine.runs.eval_job", "--metrics", ",".join(names),
           "--seed", str(seed)]
    if fast:
        cmd.append("--fast")
    if device:
        cmd += ["--device", device]
    for run, lock in locks:
        cmd += ["--run", str(run.path), str(lock.fileno())]
    return cmd


def _spawn(locks: list[tuple[Run, EvalLock]], fast: bool, names: list[str], seed: int,
           device: str | None) -> int:
    from bvae_tui.engine.train.process import worker_env

    env = dict(os.environ)
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(worker_env())
    fds = tuple(lock.fileno() for _, lock in locks)
    try:
        proc = subprocess.Popen(eval_command(locks, fast, names, seed, device),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env, start_new_session=True,
                                close_fds=True, pass_fds=fds)
    except OSError as exc:
        for run, _ in locks:
            write_job(run, EvalJob(state="failed", error=f"could not start ({exc})"))
        raise RunError(f"could not start the evaluation ({exc})") from None
    for run, lock in locks:
        lock.set_holder(proc.pid)
        job = read_job(job_path(run))
        if job is not None and job.state == "queued" and job.pid is None:  # not yet its own
            write_job(run, dataclasses.replace(job, pid=proc.pid,
                                               pid_start=process_start_time(proc.pid),
                                               host=socket.gethostname()))
    return proc.pid


# --------------------------------------------------------------------------------------------
# The detached process


class _Progress:
    """Turns evaluate_run's progress calls into eval_job.json updates (throttled)."""

    def __init__(self, run: Run, job: EvalJob, names: list[str]):
        self.run, self.job = run, job
        self.titles = _titles(names)
        self.last = 0.0

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        changes: dict[str, Any] = {"stage": stage, "stage_done": done, "stage_total": total}
        if stage.startswith("scoring "):
            title = stage[len("scoring "):]
            changes["done"] = self.titles.index(title) if title in self.titles else self.job.done
        new_stage = stage != self.job.stage
        self.job = dataclasses.replace(self.job, **changes)
        now = time.monotonic()
        if new_stage or now - self.last >= PROGRESS_EVERY_S or (total and done >= total):
            self.last = now
            write_job(self.run, self.job)


def _titles(names: list[str]) -> list[str]:
    from bvae_tui.engine.analysis.metrics import TITLES

    return [TITLES[m] for m in names]


def _score(run: Run, job: EvalJob, names: list[str], fast: bool, seed: int,
           device: str | None) -> EvalJob:
    """Score one run; the job's final record (finished, or failed with one line)."""
    note = _Progress(run, job, names)
    try:
        from bvae_tui.engine.analysis.evaluate import evaluate_run

        result = evaluate_run(run, metrics=names, fast=fast, seed=seed, device=device,
                              progress=note)
    except UserError as exc:
        print(f"eval failed: {exc}", flush=True)
        return dataclasses.replace(note.job, state="failed", error=brief(exc, 300))
    except Exception as exc:  # noqa: BLE001 - a bug: the traceback to worker.log, a line shown
        traceback.print_exc()
        return dataclasses.replace(note.job, state="failed",
                                   error=brief(f"{type(exc).__name__}: {exc}", 300))
    print(f"eval done: {result['scores']}", flush=True)
    return dataclasses.replace(note.job, state="finished", done=len(names), stage=None)


@contextlib.contextmanager
def _output_to(run: Run):
    """This process's stdout and stderr appended to the run's worker.log meanwhile."""
    try:
        log = open_append(run.log_path)
    except (OSError, UserError):
        yield
        return
    with log:
        saved = [os.dup(1), os.dup(2)]
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, saved_fd in zip((1, 2), saved, strict=True):
                os.dup2(saved_fd, fd)
                os.close(saved_fd)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the terminal it came from may close
    parser = argparse.ArgumentParser(prog="python -m bvae_tui.engine.runs.eval_job",
                                     description="score run directories (detached evaluation)")
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--device", default=None)
    parser.add_argument("--run", nargs=2, action="append", metavar=("RUN_DIR", "LOCK_FD"),
                        required=True, help="a run to score and its evaluation lock's descriptor")
    args = parser.parse_args(argv)
    names = [m for m in args.metrics.split(",") if m]
    held: list[tuple[Run, EvalLock]] = []
    for path, fd in args.run:
        run = Run(Path(path))
        try:
            held.append((run, EvalLock(run).adopt(int(fd))))
        except (UserError, ValueError):
            continue  # not ours (the launcher would not pass it): leave the run alone
    me = {"pid": os.getpid(), "pid_start": process_start_time(os.getpid()),
          "host": socket.gethostname()}
    for run, _ in held:
        job = read_job(job_path(run)) or EvalJob(state="queued")
        write_job(run, dataclasses.replace(job, **me))
    failed = 0
    for run, lock in held:
        try:
            job = dataclasses.replace(read_job(job_path(run)) or EvalJob(), state="running",
                                      started=time.time(), error=None, **me)
            write_job(run, job)
            with _output_to(run):
                print(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} eval pid {os.getpid()} "
                      f"{','.join(names)}{' (fast)' if args.fast else ''}", flush=True)
                final = _score(run, job, names, args.fast, args.seed, args.device)
            write_job(run, final)
            failed += final.state == "failed"
        except OSError:  # the run's directory went away or filled up: go on with the others
            failed += 1
        finally:
            lock.release()  # the next evaluation of this run may start now
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
