"""`bvae bench`: this project's training path against the textbook PyTorch loop, on one device.

Every figure is measured twice in the same invocation: once through the project's path (the
trainer's data path and its very training step, engine/train/step.py) and once through the
*textbook loop*: a ``DataLoader`` over a float32 ``TensorDataset`` of the same images, NCHW, the
default allocator, ``.item()`` for log values (engine/bench/sides.py). The two sides run in two
long-lived child processes (the allocator setting is per process) that the parent drives in
turns - baseline, fast, then fast, baseline - so load from other processes on a shared machine
hits both alike. Each figure is the median over the rounds and ``gain`` the median of the
per-round ratios (the measurements of a round run back to back, in alternating order), which
cancels most of a shared machine's drifting load.

Figures (``figures`` in the JSON record; each has the keys below):

- ``train.<arch>.b<batch>``: training throughput, img/s (higher is better), float32; and
  ``train.<arch>.b<batch>.bf16`` with bf16 autocast where the device has bf16 hardware (or
  ``BVAE_ALLOW_EMULATED_BF16=1`` asks for it), the textbook loop staying float32.
- ``draw.b<batch>``: data draw rate, img/s of batches ready on the device.
- ``eval.b<batch>``: encoder throughput, img/s (``engine.analysis.encode.encode_table``
  against a ``no_grad`` loop over a DataLoader).
- ``first_step``: seconds from launching ``bvae train`` on the prepared dataset to its first
  optimiser step (the first metrics row, with ``--log-every 1``); baseline: a textbook script
  that loads the dataset as a float32 tensor and takes a step (engine/bench/first_step.py).
- ``peak_rss``: peak resident memory (bytes, ``ru_maxrss`` of the finished child) of those two
  training processes.

The limit (issue 24): every training figure also carries ``flops_per_image`` (FLOPs of one
training step per image, counted by ``FlopCounterMode``: engine/bench/flops.py), ``gflops``
(that times the fast path's img/s), ``peak_gflops`` (the median GFLOP/s of a large GEMM of the
same dtype, measured by the fast child right after each round of that figure), ``of_peak``
(gflops / peak_gflops), ``conv_peak_gflops`` and ``of_conv_peak`` (the same against the
architecture's largest convolution, forward, at a large batch). The other figures have None
there. ``peaks`` lists each measured peak ({``key`` ("gemm.off", "gemm.bf16",
"conv.<arch>.<amp>"), ``what``, ``amp``, ``gflops`` (median), ``rounds``}).

Record keys: ``schema`` (3), ``device`` ("cpu" / "cuda:N"), ``device_name`` (CPU model or GPU
name), ``host``, ``torch``, ``threads``, ``cpus``, ``quick``, ``dataset``, ``dataset_source``,
``baseline_images`` (images in the textbook loop's TensorDataset), ``seconds`` (total),
``load`` (the 1-minute load average at the start and at the end: other work on the machine),
``amp_auto`` (what ``--amp auto`` resolves to on this device: ``amp``, ``used``, ``reason``,
``gain``; see engine/train/precision.py), ``cpu`` (``model``, the ``flags`` of
report.CPU_FLAGS it has, ``cpus``), ``peaks``, ``figures`` (list of {``key``, ``what``, ``unit``,
``higher_is_better``, ``fast``, ``baseline``, ``gain`` (how many times better the fast path is:
fast/baseline, or baseline/fast where lower is better; for throughputs the median of the
per-round ratios), ``amp`` (the fast side's precision: "off" is float32, "bf16"; for
``first_step`` and ``peak_rss`` what ``bvae train`` chose), ``note``, and the limit keys
above}), ``targets`` (list of
{``what``, ``key``, ``target``, ``value``, ``ok``}); engine/bench/report.py builds them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from bvae_tui.datasets.loader import dataset_status
from bvae_tui.datasets.prepare import open_dataset
from bvae_tui.engine.bench.children import Child
from bvae_tui.engine.bench.first_step import first_step_baseline, first_step_fast
from bvae_tui.engine.bench.report import (
    DTYPE_NAMES,
    SCHEMA,
    available_memory,
    cpu_record,
    figure,
    load_average,
    peak,
    targets,
    with_limit,
)

Progress = Callable[[str], None]


# --------------------------------------------------------------------------------------------
# Plans: what to measure


def plan(device: str, quick: bool) -> dict[str, Any]:
    """Sizes of a full or a quick (test-sized) benchmark on ``device``."""
    cuda = device.startswith("cuda")
    if quick:
        return {"dataset": "dsprites-mini", "archs": ("H", "B"), "batches": (8,),
                "seconds": 0.15, "rounds": 1, "warmup": 1, "draw_batch": 8, "eval_batch": 64,
                "eval_images": 128, "baseline_images": 256, "e2e_iterations": 2,
                "e2e_repeats": 1, "log_every": 5, "gemm_n": 256, "conv_batch": 16,
                "peak_seconds": 0.05, "peak_rounds": 1}
    return {"dataset": "dsprites", "archs": ("H", "B"),
            "batches": (64, 256, 1024, 4096) if cuda else (32, 64, 256),
            "seconds": 1.0, "rounds": 7, "warmup": 3, "draw_batch": 64, "eval_batch": 512,
            "eval_images": 131072 if cuda else 4096, "baseline_images": 20000,
            "e2e_iterations": 20, "e2e_repeats": 3, "log_every": 100,
            # The peaks: a GEMM big enough to run at the BLAS's full rate (a GPU needs a bigger
            # one to fill its cores), the model's largest convolution at a large batch.
            "gemm_n": 8192 if cuda else 2048, "conv_batch": 1024 if cuda else 256,
            "peak_seconds": 0.3, "peak_rounds": 5}


def run_bench(device: str = "cpu", quick: bool = False, data_dir: str | None = None,
              progress: Progress | None = None, end_to_end: bool = True) -> dict[str, Any]:
    """Measure everything; return the JSON record described in the module docstring."""
    say = progress or (lambda message: None)
    p = plan(device, quick)
    t_start = time.perf_counter()
    name = p["dataset"]
    if not dataset_status(name, data_dir)["prepared"]:
        say(f"preparing {name} (once)")
    ds = open_dataset(name, data_dir)  # prepares it when missing (procedural dSprites)
    record: dict[str, Any] = {
        "schema": SCHEMA, "device": device, "device_name": None, "host": platform.node(),
        "torch": None, "threads": None, "cpus": os.cpu_count(), "quick": quick,
        "dataset": name, "dataset_source": ds.source,
        "baseline_images": min(p["baseline_images"], ds.n), "load": [load_average()],
        "amp_auto": None, "cpu": cpu_record(), "peaks": [], "figures": [], "targets": [],
    }
    figures: list[dict[str, Any]] = record["figures"]
    del ds

    say("starting the baseline and fast-path processes")
    base = Child("baseline", device, name, data_dir, p["baseline_images"])
    fast = Child("fast", device, name, data_dir, p["baseline_images"])
    try:
        base.wait_ready()
        info = fast.wait_ready()
        record.update(device_name=info["device_name"], torch=info["torch"],
                      threads=info["threads"])
        record["amp_auto"] = info["amp_auto"]
        amps = ("off", "bf16") if info["bf16"] else ("off",)

        def interleaved(op: str, fast_variants: Sequence[dict[str, Any]] = ({},),
                        each_round: Callable[[], None] | None = None,
                        **kw: Any) -> list[tuple[float, float, float]]:
            """Rounds of the baseline and each fast variant, the order reversing every round
            (ABBA): per variant the median, the baseline's median and the median ratio.
            ``each_round`` runs after each round (the peaks measured beside the figure)."""
            sides = [(base, {})] + [(fast, v) for v in fast_variants]
            rounds: list[list[float]] = []
            for i in range(p["rounds"]):
                order = range(len(sides)) if i % 2 == 0 else reversed(range(len(sides)))
                got = [0.0] * len(sides)
                for j in order:
                    child, extra = sides[j]
                    got[j] = child.ask(op, **kw, **extra)
                rounds.append(got)
                if each_round is not None:
                    each_round()
            bs = [r[0] for r in rounds]
            return [(statistics.median(r[j] for r in rounds), statistics.median(bs),
                     statistics.median(r[j] / r[0] for r in rounds))
                    for j in range(1, len(sides))]

        # The limit: each training figure's GEMM peak is measured in the figure's own rounds
        # (the same process, right after), so a drifting load hits both alike; the convolution
        # peaks once per architecture, beside the figures.
        gemm_all: dict[str, list[float]] = {amp: [] for amp in amps}
        conv_peaks: dict[tuple[str, str], float] = {}
        measured: dict[tuple[str, str], list[float]] = {}  # (shape, amp): the same conv once
        for arch in p["archs"]:
            shape = fast.request("conv_shape", arch=arch)["what"]
            for amp in amps:
                say(f"peak: arch {arch}'s largest convolution, {DTYPE_NAMES[amp]}")
                if (shape, amp) not in measured:
                    measured[shape, amp] = [
                        fast.ask("peak", kind="conv", amp=amp, arch=arch, batch=p["conv_batch"],
                                 seconds=p["peak_seconds"]) for _ in range(p["peak_rounds"])]
                record["peaks"].append(peak(
                    f"conv.{arch}.{amp}", f"arch {arch}'s largest convolution ({shape}, "
                    f"forward, batch {p['conv_batch']}), {DTYPE_NAMES[amp]}", amp,
                    measured[shape, amp]))
                conv_peaks[arch, amp] = record["peaks"][-1]["gflops"]

        for batch in p["batches"]:
            for arch in p["archs"]:
                say(f"training throughput: arch {arch}, batch {batch}")
                flops_per_image = fast.ask("flops", arch=arch, batch=batch)
                gemm_here: dict[str, list[float]] = {amp: [] for amp in amps}

                def gemm_round(gemm_here: dict[str, list[float]] = gemm_here) -> None:
                    for amp in amps:
                        gemm_here[amp].append(fast.ask("peak", kind="gemm", amp=amp,
                                                       n=p["gemm_n"],
                                                       seconds=p["peak_seconds"]))

                results = interleaved("train", [{"amp": amp} for amp in amps], gemm_round,
                                      arch=arch, batch=batch, seconds=p["seconds"],
                                      warmup=p["warmup"], log_every=p["log_every"])
                for amp, (f, b, g) in zip(amps, results, strict=True):
                    suffix = "" if amp == "off" else f".{amp}"
                    shown = "" if amp == "off" else f", {amp}"
                    fig = figure(f"train.{arch}.b{batch}{suffix}",
                                 f"training, arch {arch}, batch {batch}{shown}",
                                 "img/s", f, b, gain=g, amp=amp)
                    figures.append(with_limit(fig, flops_per_image,
                                              statistics.median(gemm_here[amp]),
                                              conv_peaks[arch, amp]))
                    gemm_all[amp] += gemm_here[amp]
        record["peaks"][:0] = [  # the GEMM peaks first: the fractions are of them
            peak(f"gemm.{amp}", f"{p['gemm_n']}x{p['gemm_n']} matrix product, "
                 f"{DTYPE_NAMES[amp]}", amp, gemm_all[amp]) for amp in amps]
        say("data draw rate")
        [(f, b, g)] = interleaved("draw", batch=p["draw_batch"], seconds=p["seconds"] / 2,
                                  warmup=p["warmup"])
        figures.append(figure(f"draw.b{p['draw_batch']}",
                               f"data draw, batch {p['draw_batch']}", "img/s", f, b, gain=g))
        say("eval throughput")
        [(f, b, g)] = interleaved("eval", batch=p["eval_batch"], images=p["eval_images"])
        figures.append(figure(f"eval.b{p['eval_batch']}",
                               f"encoder (eval), batch {p['eval_batch']}", "img/s", f, b,
                               gain=g))
    finally:
        base.close()
        fast.close()

    if end_to_end:
        say(f"time to first step: bvae train on {name}")
        runs = [first_step_fast(device, name, data_dir, p["e2e_iterations"])
                for _ in range(p["e2e_repeats"])]
        t_fast = statistics.median(t for t, _, _ in runs)
        rss_fast = max(r for _, r, _ in runs)
        times = ", ".join(f"{t:.2f}" for t, _, _ in runs)
        used = runs[0][2]  # what --amp auto resolved to in `bvae train`
        n_all = open_dataset(name, data_dir).n
        need = n_all * 64 * 64 * 4 * 1.15  # float32 copy of every image, plus the process
        avail = available_memory()
        images, note = None, ""
        if avail is not None and need > 0.8 * avail:
            images = int(n_all * 0.8 * avail / need)
            note = (f"baseline on {images:,} of {n_all:,} images (all of them as float32 would "
                    f"need {need / 2**30:.1f} GB, {avail / 2**30:.1f} GB free)")
        say("time to first step: textbook script" + (f" ({note})" if note else ""))
        t_base, rss_base = first_step_baseline(device, name, data_dir, p["e2e_iterations"],
                                               images)
        figures.append(figure("first_step", f"bvae train -> first step ({name})", "s",
                               t_fast, t_base, higher_is_better=False, amp=used,
                               note="; ".join(x for x in (f"bvae: median of {times} s", note)
                                              if x)))
        figures.append(figure("peak_rss", f"peak RSS of training ({name})", "bytes",
                               float(rss_fast), float(rss_base), higher_is_better=False,
                               note=note, amp=used))

    record["load"].append(load_average())
    record["targets"] = targets(record, device)
    record["seconds"] = time.perf_counter() - t_start
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bvae_tui.engine.bench.suite",
                                     description="the benchmark's JSON record (or `bvae bench`)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-end-to-end", action="store_true")
    args = parser.parse_args(argv)
    record = run_bench(args.device, quick=args.quick, data_dir=args.data_dir,
                       progress=lambda m: print(m, file=sys.stderr, flush=True),
                       end_to_end=not args.no_end_to_end)
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
