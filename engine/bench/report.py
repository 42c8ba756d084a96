"""The benchmark record: its keys, its figures, the acceptance targets and their text form.

Torch-free: the parent process of `bvae bench` and the CLI table use it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

SCHEMA = 2
FIGURE_KEYS = ("key", "what", "unit", "higher_is_better", "fast", "baseline", "gain", "amp",
               "note")
RECORD_KEYS = ("schema", "device", "device_name", "host", "torch", "threads", "cpus", "quick",
               "dataset", "dataset_source", "baseline_images", "seconds", "load", "amp_auto",
               "figures", "targets")


def figure(key: str, what: str, unit: str, fast: float, baseline: float | None,
           higher_is_better: bool = True, note: str = "", gain: float | None = None,
           amp: str = "off") -> dict[str, Any]:
    """One figure of the record; ``gain`` defaults to the ratio of the two sides; ``amp`` is the
    fast side's precision (the textbook loop is always float32)."""
    if gain is None and baseline and fast:
        gain = fast / baseline if higher_is_better else baseline / fast
    return {"key": key, "what": what, "unit": unit, "higher_is_better": higher_is_better,
            "fast": fast, "baseline": baseline, "gain": gain, "amp": amp, "note": note}


def targets(record: dict[str, Any], device: str) -> list[dict[str, Any]]:
    """The acceptance targets (issues 7 and 13), checked against this record. The training
    target holds for the precision ``--amp auto`` chose on this device, as a user gets it."""
    by_key = {f["key"]: f for f in record["figures"]}
    auto = (record.get("amp_auto") or {}).get("used", "off")
    suffix = "" if auto == "off" else f".{auto}"
    out = []

    def check(what: str, key: str, field: str, target: str, ok: Callable[[float], bool]) -> None:
        fig = by_key.get(key)
        if fig is None or fig.get(field) is None:
            return
        value = fig[field]
        out.append({"what": what, "key": key, "target": target, "value": value,
                    "ok": bool(ok(value))})

    if not device.startswith("cuda"):
        for arch in ("H", "B"):
            check(f"training speed-up, arch {arch}, batch 64 ({auto})",
                  f"train.{arch}.b64{suffix}", "gain", ">= 1.5x", lambda v: v >= 1.5)
    if record["dataset"] == "dsprites":
        check("time to first step on dSprites", "first_step", "fast", "< 2 s",
              lambda v: v < 2.0)
        check("peak RSS of dSprites training", "peak_rss", "fast", "< 1 GB",
              lambda v: v < 1e9)
    return out


# Plain text; the CLI renders the same rows with rich.


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "bytes":
        return f"{value / 2**20:,.0f} MB"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:,.0f} {unit}"


def format_gain(gain: float | None) -> str:
    return "-" if gain is None else f"{gain:.2f}x"


# What the record says about the machine.


def load_average() -> float | None:
    """The 1-minute load average: other work on the machine while the bench runs."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def available_memory() -> int | None:
    """MemAvailable in bytes (None where /proc/meminfo is missing)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
