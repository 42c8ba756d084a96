"""The slot table of one host: which runs the sweeps' schedulers placed on which device.

Several sweeps on one GPU box share it (``<runs root>/sweeps/.slots/<host>.json``, read and
written under an flock on ``<host>.lock``), so that together they never put more than
``--per-gpu`` runs on a device. An entry lives as long as its worker (pid + start time), so the
table heals itself after any crash: a dead worker's entry is dropped at the next claim.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from bvae_tui.engine.runs.files import read_json, write_json_atomic
from bvae_tui.engine.runs.process import worker_alive
from bvae_tui.engine.runs.store import slug
from bvae_tui.engine.runs.sweeps.flock import locked
from bvae_tui.engine.runs.sweeps.records import SLOTS_DIR, SWEEPS_DIR, SlotEntry

CLAIM_GRACE_S = 30.0  # an entry whose worker pid is not known yet is kept this long
FAKE_PREFIX = "fake:"  # stand-in devices for tests of the packing: they train on the CPU
# Free GPU memory a start needs beyond the measured peak (the CUDA context, fragmentation).
MEMORY_MARGIN = 1.1
MEMORY_EXTRA = 256 * 1024**2


def train_device(slot: str) -> str:
    """The device a member placed in ``slot`` trains on: the slot's own, except the stand-in
    slots ``fake:N`` (which let tests exercise the packing without GPUs) train on the CPU."""
    return "cpu" if slot.startswith(FAKE_PREFIX) else slot


class Slots:
    """The entries of the table while its lock is held."""

    def __init__(self, entries: list[SlotEntry]):
        self.entries = entries
        self.changed = False

    def prune(self) -> None:
        now = time.time()
        keep = [e for e in self.entries
                if worker_alive(e.pid, e.pid_start)
                or (e.pid is None and now - (e.since or 0.0) < CLAIM_GRACE_S)]
        if len(keep) != len(self.entries):
            self.entries, self.changed = keep, True

    def used(self, device: str) -> int:
        return sum(1 for e in self.entries if e.device == device)

    def holder(self, run: Path) -> SlotEntry | None:
        return next((e for e in self.entries if e.run == str(run)), None)

    def add(self, entry: SlotEntry) -> None:
        self.entries = [e for e in self.entries if e.run != entry.run] + [entry]
        self.changed = True

    def pick(self, devices: Sequence[str], per_device: int,
             fits: dict[str, bool] | None = None) -> str | None:
        """The device for the next start: one with a free slot (and, for a GPU, enough free
        memory, ``fits``), the emptiest first, then in the sweep's order."""
        fits = fits or {}
        free = [d for d in devices if self.used(d) < per_device and fits.get(d, True)]
        if not free:
            return None
        return min(free, key=lambda d: (self.used(d), devices.index(d)))


class SlotTable:
    """The slot table of this host under a runs root."""

    def __init__(self, runs_root: Path, host: str | None = None):
        folder = Path(runs_root) / SWEEPS_DIR / SLOTS_DIR
        name = slug(host or socket.gethostname())
        self.folder = folder
        self.path = folder / f"{name}.json"
        self.lock_path = folder / f"{name}.lock"

    @contextlib.contextmanager
    def claim(self, timeout: float | None = None) -> Iterator[Slots]:
        """The entries, exclusively, for as long as the block runs; written back if changed.
        ``timeout``: how long to wait for the table's lock (see :func:`.flock.locked`; a
        :class:`~.flock.LockBusy` after it)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with locked(self.lock_path, timeout):
            data = read_json(self.path) or {}
            raw = data.get("slots")
            entries = [SlotEntry.from_dict(e) for e in raw] if isinstance(raw, list) else []
            slots = Slots([e for e in entries if e.device and e.run])
            yield slots
            if slots.changed:
                write_json_atomic(self.path, {"slots": [e.to_dict() for e in slots.entries]})

    def entries(self) -> list[SlotEntry]:
        """The live entries (for display); the table is not changed."""
        with self.claim() as slots:
            slots.prune()
            slots.changed = False
            return list(slots.entries)


def memory_fits(devices: Sequence[str], peak: int | None, used: dict[str, int],
                free_memory: dict[str, int]) -> dict[str, bool]:
    """Which GPU slots may take one more member now.

    Until a member of the sweep has measured its peak, a GPU takes a member only while it
    has none (so one member per GPU runs its first steps); then a start needs the peak (plus a
    margin) free, as NVML reports it. Devices NVML does not know (the CPU) always fit.
    """
    out = {}
    for device in devices:
        if device not in free_memory:
            out[device] = True
        elif peak is None:
            out[device] = used.get(device, 0) == 0
        else:
            out[device] = free_memory[device] >= peak * MEMORY_MARGIN + MEMORY_EXTRA
    return out
