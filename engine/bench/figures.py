"""This machine's training throughput as `bvae bench` measured it, kept for estimates.

`bvae bench` (not ``--quick``: its tiny sizes check the machinery, not speed) saves the training
figures of its record (``train.<arch>.b<batch>`` and ``.bf16``, img/s of the project's own step)
in ``bench.json`` beside the precision cache (``$BVAE_CACHE_DIR``, else
``$XDG_CACHE_HOME/bvae-tui``, else ``~/.cache/bvae-tui``), keyed like that cache by the device
model and what decides bf16 on it (engine/train/precision.py's ``cache_key``), so a figure of one
machine is never used for another. ``bvae sweep --dry-run`` turns them into a time estimate.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bvae_tui.engine.runs.files import read_json, write_json_atomic

BENCH_FILE = "bench.json"


def bench_path() -> Path:
    from bvae_tui.engine.train.precision import cache_path

    return cache_path().with_name(BENCH_FILE)


def device_key(device: str) -> str:
    from bvae_tui.engine.train.precision import cache_key

    return cache_key(device)


def save_record(record: dict[str, Any]) -> Path | None:
    """Keep the training figures of a `bvae bench` record; None when there is nothing to keep
    (a ``--quick`` record) or the cache cannot be written (an estimate then says so)."""
    if record.get("quick"):
        return None
    train = {f["key"]: float(f["fast"]) for f in record.get("figures", [])
             if str(f.get("key", "")).startswith("train.") and f.get("fast")}
    if not train:
        return None
    path = bench_path()
    saved = read_json(path) or {}
    saved[device_key(str(record["device"]))] = {
        "device": record.get("device"), "device_name": record.get("device_name"),
        "torch": record.get("torch"), "host": record.get("host"), "measured": time.time(),
        "train": train,
    }
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, saved)
        return path
    return None


@dataclass
class Rates:
    """The saved training figures of one device: img/s by (arch, batch, amp)."""

    key: str
    measured: float | None
    train: dict[str, float]

    def rate(self, arch: str, batch: int, bf16: bool) -> tuple[float, int] | None:
        """img/s for ``arch`` at the measured batch nearest ``batch`` (and that batch); the
        bf16 figure where asked and measured, else float32's. None: arch not measured."""
        found: dict[int, float] = {}
        for key, value in self.train.items():
            parts = key.split(".")  # train, arch, b<batch>[, bf16]
            if len(parts) < 3 or parts[1] != arch or not parts[2][1:].isdigit():
                continue
            amp = parts[3] if len(parts) > 3 else "off"
            b = int(parts[2][1:])
            if amp == "off" and b not in found:
                found[b] = value
            if bf16 and amp == "bf16":
                found[b] = value  # preferred over float32's where both exist
        if not found:
            return None
        nearest = min(found, key=lambda b: (abs(b - batch), b))
        return found[nearest], nearest


def saved_rates(device: str) -> Rates | None:
    """This device's saved figures, or None when `bvae bench` has not saved any here."""
    key = device_key(device)
    entry = (read_json(bench_path()) or {}).get(key)
    if not isinstance(entry, dict) or not isinstance(entry.get("train"), dict):
        return None
    train = {str(k): float(v) for k, v in entry["train"].items()
             if isinstance(v, (int, float)) and v > 0}
    measured = entry.get("measured")
    return Rates(key, float(measured) if isinstance(measured, (int, float)) else None, train)


def uses_bf16(amp: str, device: str) -> bool:
    """Whether a member with ``--amp amp`` trains in bf16 here, as far as known without
    measuring: ``bf16``, or ``auto`` where the precision cache decided bf16."""
    if amp == "bf16":
        return True
    if amp != "auto":
        return False
    from bvae_tui.engine.train.precision import cache_path

    entry = (read_json(cache_path()) or {}).get(device_key(device))
    return isinstance(entry, dict) and entry.get("used") == "bf16"
