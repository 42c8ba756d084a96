"""The benchmark record: its keys, its figures, the acceptance targets and their text form.

Torch-free: the parent process of `bvae bench` and the CLI table use it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

SCHEMA = 3
# The limit of a training figure (None on the others): FLOPs per image of the step, the GFLOP/s
# the fast path reached, the GEMM peak of the same dtype measured in the same rounds and the
# fraction of it, and the same against the model's largest convolution.
LIMIT_KEYS = ("flops_per_image", "gflops", "peak_gflops", "of_peak", "conv_peak_gflops",
              "of_conv_peak")
FIGURE_KEYS = ("key", "what", "unit", "higher_is_better", "fast", "baseline", "gain", "amp",
               "note", *LIMIT_KEYS)
RECORD_KEYS = ("schema", "device", "device_name", "host", "torch", "threads", "cpus", "quick",
               "dataset", "dataset_source", "baseline_images", "seconds", "load", "amp_auto",
               "cpu", "peaks", "figures", "targets")
PEAK_KEYS = ("key", "what", "amp", "gflops", "rounds")
OF_PEAK_TARGETS = {"off": 0.5, "bf16": 0.4}  # issue 24: fraction of the GEMM peak at batch 64
DTYPE_NAMES = {"off": "float32", "bf16": "bf16"}
# The CPU flags a record keeps: what decides bf16 and the vector width of the kernels.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "bf16")


def cpu_record() -> dict[str, Any]:
    """The CPU the record was measured on: model name and the flags of :data:`CPU_FLAGS` it has
    (torch-free: /proc/cpuinfo)."""
    from bvae_tui.engine.train.precision import cpu_flags, cpu_model

    flags = cpu_flags()
    return {"model": cpu_model(), "flags": [f for f in CPU_FLAGS if f in flags],
            "cpus": os.cpu_count()}


def figure(key: str, what: str, unit: str, fast: float, baseline: float | None,
           higher_is_better: bool = True, note: str = "", gain: float | None = None,
           amp: str = "off") -> dict[str, Any]:
    """One figure of the record; ``gain`` defaults to the ratio of the two sides; ``amp`` is the
    fast side's precision (the textbook loop is always float32)."""
    if gain is None and baseline and fast:
        gain = fast / baseline if higher_is_better else baseline / fast
    return {"key": key, "what": what, "unit": unit, "higher_is_better": higher_is_better,
            "fast": fast, "baseline": baseline, "gain": gain, "amp": amp, "note": note,
            **dict.fromkeys(LIMIT_KEYS)}


def with_limit(fig: dict[str, Any], flops_per_image: float, peak_gflops: float | None,
               conv_peak_gflops: float | None = None) -> dict[str, Any]:
    """``fig`` (a training figure in img/s) with its limit: achieved GFLOP/s is
    ``flops_per_image`` x img/s, and each fraction is achieved / that peak."""
    gflops = flops_per_image * fig["fast"] / 1e9
    fig.update(flops_per_image=flops_per_image, gflops=gflops, peak_gflops=peak_gflops,
               of_peak=gflops / peak_gflops if peak_gflops else None,
               conv_peak_gflops=conv_peak_gflops,
               of_conv_peak=gflops / conv_peak_gflops if conv_peak_gflops else None)
    return fig


def peak(key: str, what: str, amp: str, values: list[float]) -> dict[str, Any]:
    """One measured peak of the record: the median of ``values`` (GFLOP/s), and the values."""
    import statistics

    return {"key": key, "what": what, "amp": amp, "gflops": statistics.median(values),
            "rounds": [round(v, 2) for v in values]}


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
        for amp, least in OF_PEAK_TARGETS.items():
            for arch in ("H", "B"):
                tail = "" if amp == "off" else f".{amp}"
                check(f"fraction of the {DTYPE_NAMES[amp]} GEMM peak, arch {arch}, batch 64",
                      f"train.{arch}.b64{tail}", "of_peak", f">= {least:.0%}",
                      lambda v, least=least: v >= least)
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


def format_fraction(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction:.0%}"


def format_gflops(gflops: float | None) -> str:
    return "-" if gflops is None else f"{gflops:,.1f}"


def format_target(target: dict[str, Any]) -> str:
    """A target's measured value as the table shows its kind."""
    value, key = target["value"], target["key"]
    if target["what"].startswith("fraction"):
        return format_fraction(value)
    if key.startswith("train"):
        return format_gain(value)
    return format_value(value, "bytes" if key == "peak_rss" else "s")


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
