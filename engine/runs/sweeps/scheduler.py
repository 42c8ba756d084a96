"""The local scheduler of a sweep: ``python -m bvae_tui.engine.runs.sweeps.scheduler SWEEP_DIR``.

Started detached in its own session (like a worker: closing the terminal or SSH does not stop
it) by :func:`bvae_tui.engine.runs.sweeps.local.start_scheduler`. It holds the sweep's
``scheduler.lock`` for its whole life, so a second scheduler of the same sweep exits at once.
Every poll it starts the worker of the next queued member (the same worker entry point as
``bvae train --detach``) whenever the host's slot table has a free slot on one of the sweep's
devices, and exits when no member is left queued or running. A member that fails is reported
and the sweep goes on.

Adopt, never duplicate: at start it keeps the members whose worker is still alive (pid and
start time), wherever they came from, and puts back in the queue the members whose worker died
(they resume from their checkpoints). A member is taken from the queue only under the sweep's
queue lock and only while no live worker stands behind it.

Never wedged by a lock: the queue lock and the host's slot table are taken together or not at
all (one is never waited for while the other is held), each try without blocking, so a process
that holds the slot table (another sweep's scheduler, or anyone who can read the file) delays
starts but never keeps `bvae sweep stop` from the queue, and a stop ends the wait.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

from bvae_tui.engine.errors import RunError, UserError
from bvae_tui.engine.runs.devices import list_gpus
from bvae_tui.engine.runs.launch import launch
from bvae_tui.engine.runs.lock import RunLocked, lock_holder
from bvae_tui.engine.runs.process import on_stop_signals, process_start_time
from bvae_tui.engine.runs.records import Status
from bvae_tui.engine.runs.store import Run
from bvae_tui.engine.runs.sweeps.flock import POLL_S as LOCK_POLL_S
from bvae_tui.engine.runs.sweeps.flock import LockBusy, locked, try_lock
from bvae_tui.engine.runs.sweeps.records import QUEUE_LOCK, SlotEntry
from bvae_tui.engine.runs.sweeps.slots import Slots, SlotTable, memory_fits, train_device
from bvae_tui.engine.runs.sweeps.store import Sweep

POLL_S = 1.0
REAP_WAIT_S = 2.0
CLAIM_WAIT_S = 10.0  # one poll's wait for the queue and the slot table; the next poll retries


def _exit_text(code: int | None) -> str:
    if code is None:
        return "an unknown exit status"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class Scheduler:
    def __init__(self, sweep: Sweep, poll: float = POLL_S):
        self.sweep = sweep
        record = sweep.record()
        self.devices = list(record.devices) or ["cpu"]
        self.per_device = max(1, record.per_device or 1)
        self.poll = poll
        self.table = SlotTable(sweep.runs_root)
        status = sweep.scheduler()
        self.memory_peak = status.memory_peak
        self.placements: dict[str, str] = dict(status.placements)
        self.exit_codes: dict[int, int] = {}  # pid -> exit status of workers this one started
        self.started: set[int] = set()
        self.stop = False
        self._said: set[str] = set()

    # The loop ----------------------------------------------------------------------------------
    def run(self) -> str:
        pid = os.getpid()
        self._write(state="running", started=time.time(), error=None)
        self.sweep.log(f"scheduler pid {pid}: {len(self.sweep.members())} members, devices "
                       f"{', '.join(self.devices)}, {self.per_device} per device")
        recovered = self.recover()
        state = "finished"
        while True:
            if self._stopping():
                state = "stopped"
                break
            if not recovered:  # the locks were busy: adopt first, then start anything
                recovered = self.recover()
            elif not self.step():
                break
            deadline = time.monotonic() + self.poll
            while time.monotonic() < deadline and not self.stop:
                time.sleep(min(0.05, self.poll))
        self._write(state=state)
        self.sweep.log(f"scheduler {state}")
        return state

    def recover(self) -> bool:
        """Adopt the members whose worker still runs; queue again those whose worker died.
        False when the locks stayed busy (or a stop came): nothing was done, try again."""
        with self._claim() as slots:
            if slots is None:
                return False
            slots.prune()
            for run in self.sweep.members():
                if not run.path.is_dir():
                    continue
                status = run.status()
                holder = lock_holder(run)  # whoever trains it holds its lock
                if holder or (status.active and status.pid):
                    pid = holder or status.pid
                    start = status.pid_start if pid == status.pid else process_start_time(pid)
                    device = self.placements.get(run.id) or status.device or self.devices[0]
                    if slots.holder(run.path) is None:
                        slots.add(SlotEntry(device=device, run=str(run.path),
                                            sweep=self.sweep.id, pid=pid, pid_start=start,
                                            since=time.time()))
                    self.placements[run.id] = device
                    self.sweep.log(f"adopted {run.id} on {device} (worker pid {pid})")
                elif status.state == "lost":
                    run.write_status(state="queued", pid=None, pid_start=None, host=None,
                                     phase=None, error=None)
                    self.sweep.log(f"queued {run.id} again (its worker pid {status.pid} is "
                                   "gone); it resumes from its checkpoint")
        return True

    def step(self) -> bool:
        """One poll; False when no member is left queued or running."""
        self._reap()
        statuses = {run: run.status() for run in self.sweep.members() if run.path.is_dir()}
        for run, status in statuses.items():
            if status.state == "lost" and (status.pid in self.started
                                           or run.id in self.placements):
                self._died(run, status)
                statuses[run] = run.status()
        peaks = [s.memory_peak for s in statuses.values() if s.memory_peak]
        if peaks:
            self.memory_peak = max([*peaks, self.memory_peak or 0])
        active = {run.id for run, s in statuses.items() if s.active and s.pid}
        self.placements = {k: v for k, v in self.placements.items() if k in active}
        pending = [run for run, s in statuses.items() if s.state == "queued" and not s.pid]
        if pending:
            self._start_some(pending)
        self._write(memory_peak=self.memory_peak)
        return bool(pending or active)

    # Starting members --------------------------------------------------------------------------
    def _start_some(self, pending: list[Run]) -> None:
        gpus = [d for d in self.devices if d.startswith("cuda:")]
        free = {f"cuda:{g.index}": g.memory_free for g in list_gpus()[0]} if gpus else {}
        with self._claim() as slots:
            # Read again under the queue lock: a stop writes it before it empties the queue.
            if slots is None or self.sweep.scheduler().stop_requested:
                return
            slots.prune()
            for run in pending:
                status = run.status()  # again, under the lock: it may have been stopped
                if status.state != "queued" or status.pid:
                    continue
                used = {d: slots.used(d) for d in self.devices}
                device = slots.pick(self.devices, self.per_device,
                                    memory_fits(self.devices, self.memory_peak, used, free))
                if device is None:
                    self._say_once("full", "every slot is taken; members wait for one")
                    return
                self._start(run, status, device, slots)
                if device in free and self.memory_peak:
                    free[device] -= self.memory_peak

    def _start(self, run: Run, status: Status, device: str, slots: Slots) -> None:
        record = run.record()
        target = train_device(device)
        if record.config.get("device") != target:
            run.update_record(config={**record.config, "device": target})
        # Anything trained before (a checkpoint, or just a start) continues; a fresh member starts.
        resume = (run.last_checkpoint.exists() or bool(status.iteration)
                  or status.launched is not None)
        # Collect the exit status of workers that ended since the last poll first: starting a
        # process lets the subprocess module reap finished children, and their status with them.
        self._reap()
        try:
            pid = launch(run, resume=resume, extra_env=self._threads(target))
        except RunLocked as exc:  # someone started it by hand meanwhile: it is not waiting
            self._say_once(f"locked {run.id}", f"not starting {run.id}: {exc}")
            return
        except (OSError, RunError) as exc:
            run.write_status(state="failed", error=f"could not start the worker ({exc})")
            self.sweep.log(f"failed to start {run.id}: {exc}")
            return
        self.started.add(pid)
        slots.add(SlotEntry(device=device, run=str(run.path), sweep=self.sweep.id, pid=pid,
                            pid_start=process_start_time(pid), since=time.time()))
        self.placements[run.id] = device
        self.sweep.log(f"started {run.id} on {device} (worker pid {pid}"
                       f"{', resuming' if resume else ''})")

    def _died(self, run: Run, status: Status) -> None:
        """A worker this scheduler started died without writing its end: a failed member."""
        if status.pid in self.started:
            self._reap(status.pid)
        how = _exit_text(self.exit_codes.get(status.pid or -1))
        run.write_status(state="failed", phase=None,
                         error=f"worker (pid {status.pid}) died with {how} before it could "
                               f"write why; 'bvae sweep resume {self.sweep.id} --retry-failed' "
                               "tries it again from its checkpoint")
        self.sweep.log(f"{run.id} failed: its worker died with {how}")

    def _threads(self, device: str) -> dict[str, str]:
        """CPU members share the cores: each gets its part (unless the user chose a number)."""
        if device != "cpu" or self.per_device == 1 or os.environ.get("OMP_NUM_THREADS"):
            return {}
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cores = os.cpu_count() or 1
        return {"OMP_NUM_THREADS": str(max(1, cores // self.per_device))}

    # Locks -------------------------------------------------------------------------------------
    def _stopping(self) -> bool:
        return self.stop or self.sweep.scheduler().stop_requested

    @contextlib.contextmanager
    def _claim(self) -> Iterator[Slots | None]:
        """The sweep's queue lock and the host's slot table, both held for the block; None
        when they stayed busy for :data:`CLAIM_WAIT_S` or a stop came meanwhile (the block
        then does nothing, and the next poll tries again)."""
        deadline = time.monotonic() + CLAIM_WAIT_S
        while not self._stopping():
            held = self._try_both()
            if isinstance(held, tuple):
                stack, slots = held
                with stack:
                    yield slots
                return
            if time.monotonic() > deadline:
                self._say_once(f"busy {held.path}", f"members wait: {held.path} is held by "
                               f"{held.holder}; they start once it is free")
                break
            time.sleep(LOCK_POLL_S)
        yield None

    def _try_both(self) -> tuple[contextlib.ExitStack, Slots] | LockBusy:
        """Both locks at once, without waiting for either (the held locks, on an ExitStack
        the caller closes, and the table), or the LockBusy of the one that was taken."""
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(locked(self.sweep.path / QUEUE_LOCK, timeout=0))
            slots = stack.enter_context(self.table.claim(timeout=0))
        except LockBusy as busy:
            stack.close()
            return busy
        except BaseException:
            stack.close()
            raise
        return stack, slots

    # Bookkeeping -------------------------------------------------------------------------------
    def _reap(self, dead: int | None = None) -> None:
        """Collect the exit status of finished workers (children of this process). ``dead``:
        a worker that reads as dead, waited for a moment: a killed multi-threaded process is a
        zombie before its last thread has exited, and cannot be reaped until then."""
        deadline = time.monotonic() + REAP_WAIT_S
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid:
                self.exit_codes[pid] = os.waitstatus_to_exitcode(status)
                continue
            if dead is None or dead in self.exit_codes or time.monotonic() > deadline:
                return
            time.sleep(0.01)

    def _say_once(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            self.sweep.log(message)

    def _write(self, **changes: object) -> None:
        pid = os.getpid()
        self.sweep.write_scheduler(pid=pid, pid_start=process_start_time(pid),
                                   host=socket.gethostname(), heartbeat=time.time(),
                                   placements=dict(self.placements), **changes)


def main(argv: list[str] | None = None) -> int:
    scheduler: Scheduler | None = None
    stop = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True
        if scheduler is not None:
            scheduler.stop = True

    on_stop_signals(request_stop)
    parser = argparse.ArgumentParser(prog="python -m bvae_tui.engine.runs.sweeps.scheduler",
                                     description="place a sweep's members on device slots")
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--poll", type=float, default=POLL_S, help="seconds between polls")
    args = parser.parse_args(argv)
    sweep = Sweep(args.sweep_dir.resolve())
    try:
        lock = try_lock(sweep.lock_path)
    except UserError as exc:  # e.g. the lock file is a symbolic link: one line in the log
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    if lock is None:
        pid = sweep.scheduler().pid
        print(f"error: sweep {sweep.id} already has a scheduler (pid {pid}); this one exits",
              file=sys.stderr, flush=True)
        return 3
    try:
        scheduler = Scheduler(sweep, args.poll)
        scheduler.stop = stop
        scheduler.run()
        return 0
    except Exception as exc:  # noqa: BLE001 - say why in scheduler.json, the traceback in the log
        traceback.print_exc()
        first = str(exc).splitlines()[0] if str(exc) else ""
        sweep.write_scheduler(state="stopped",
                              error=f"scheduler error: {type(exc).__name__}: {first}")
        return 1
    finally:
        os.close(lock)


if __name__ == "__main__":
    sys.exit(main())
