"""What `bvae resume` (and the TUI's ``r``) will do with a run, decided under the run's lock.

A stopped, failed or lost run continues from its last checkpoint (the one before it when
``last.pt`` is unreadable); one without a checkpoint trains again from iteration 0, and says how
many iterations that retrains. Only a finished run, or one that another process is training, is
refused. A resume may change the learning rate and the device; the trainer records each change
in config.json at the iteration it takes effect.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bvae_tui.engine.config import field_info
from bvae_tui.engine.errors import RunError
from bvae_tui.engine.runs.devices import gpu_capability, resolve_device
from bvae_tui.engine.runs.launch import launch
from bvae_tui.engine.runs.lock import RunLock, RunLocked
from bvae_tui.engine.runs.recovery import usable_checkpoint
from bvae_tui.engine.runs.store import Run
from bvae_tui.engine.train.precision import check_amp

# The settings a resume may change: neither alters the model or the data it was trained on.
CHANGEABLE = ("lr", "device")


@dataclass
class ResumePlan:
    """A resume that may go ahead, holding the run's lock: hand ``lock`` to
    :func:`~bvae_tui.engine.runs.launch.launch`, or hold it while training in this process."""

    run: Run
    lock: RunLock
    from_zero: bool  # no usable checkpoint, or --restart: iteration 0
    restart: bool  # --restart: the old checkpoints are discarded
    reached: int  # the iteration the run had reached
    device: str  # where it will train
    note: str | None = None  # e.g. last.pt unreadable, resuming from prev.pt
    changes: dict[str, Any] = field(default_factory=dict)  # new values of CHANGEABLE fields
    previous: dict[str, Any] = field(default_factory=dict)  # their values before

    def messages(self) -> list[str]:
        """One line per thing the user should know before it starts."""
        lines = [self.note] if self.note else []
        if self.restart:
            lines.append(f"training {self.run.id} again from iteration 0, discarding its "
                         f"checkpoints ({self.reached} iterations are retrained)")
        elif self.from_zero and self.reached:
            lines.append(f"run {self.run.id} has no checkpoint: training it again from "
                         f"iteration 0 ({self.reached} iterations are retrained)")
        for name, new in self.changes.items():
            info = field_info(name)
            lines.append(f"{name} {info.show(self.previous[name])} -> {info.show(new)} from "
                         "the resumed iteration on (recorded in the run)")
        return lines


def plan_resume(run: Run, restart: bool = False, lr: float | None = None,
                device: str | None = None) -> ResumePlan:
    """Take the run's lock, then check that it can be resumed and how (the lock is released
    again when it cannot). ``lr`` / ``device``: new values (None: keep the run's).

    The lock comes first: of two resumes at once the second stops here naming the first's pid,
    and nothing can change the run between these checks and the start.
    """
    lock = _lock_once_worker_exits(run)
    try:
        return _plan(run, lock, restart, {"lr": lr, "device": device})
    except BaseException:
        lock.release()
        raise


# A worker that has written its last state (stopped, failed) still holds the lock while it exits
# (closing files, the interpreter's shutdown: well under a second, more on a loaded machine).
EXIT_GRACE_S = 15.0


def _lock_once_worker_exits(run: Run) -> RunLock:
    """The run's lock; while its holder has already said it is no longer training, wait for it
    to exit rather than refuse (a resume right after a stop). A training holder is refused."""
    deadline = time.monotonic() + EXIT_GRACE_S
    while True:
        try:
            return RunLock(run).acquire()
        except RunLocked:
            if run.raw_status().active or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _plan(run: Run, lock: RunLock, restart: bool, wanted: dict[str, Any]) -> ResumePlan:
    status = run.status()
    if status.state == "finished":
        raise RunError(f"run {run.id} already finished; start a new run with 'bvae train'")
    if status.active:  # a worker that does not lock (an older version) is still alive
        raise RunError(f"run {run.id} is {status.state}; stop it first with 'bvae stop {run.id}'")
    cfg = run.config  # a bad config.json is reported (as such) before anything starts
    changes = {k: v for k, v in wanted.items() if v is not None and v != getattr(cfg, k)}
    new = cfg.replace(**changes).validate()  # a bad --lr is an error about --lr
    device = resolve_device(new.device)  # the GPU it trained on may be gone: --device cpu
    if new.amp == "bf16":  # and this machine may lack bf16
        check_amp("bf16", device, gpu_capability(device))
    reached = status.iteration or 0
    previous = {k: getattr(cfg, k) for k in changes}
    if restart:
        return ResumePlan(run, lock, True, True, reached, device, None, changes, previous)
    usable = usable_checkpoint(run)
    if usable.damaged:
        raise RunError(f"run {run.id} has no readable checkpoint ({usable.note}); "
                       f"'bvae resume {run.id} --restart' trains it again from 0")
    return ResumePlan(run, lock, usable.path is None, False, reached, device, usable.note,
                      changes, previous)


def resume_detached(plan: ResumePlan) -> int:
    """Start ``plan``'s worker in the background (it takes over the lock); its pid."""
    return launch(plan.run, resume=not plan.restart, lock=plan.lock, changes=plan.changes)
