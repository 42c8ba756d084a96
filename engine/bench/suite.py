"""`bvae bench`: this project's training path against the textbook PyTorch loop, on one device.

Every figure is measured twice in the same invocation: once through the project's path (the
trainer's data path and its very training step, engine/train/step.py) and once through the
*textbook loop*: a ``DataLoader`` over a float32 ``TensorDataset`` of the same images, NCHW, the
default allocator, ``.item()`` for log values (engine/bench/sides.py). The two sides run in two
long-lived child processes (the allocator setting is per process) that the parent drives in
turns - baseline, fast, baseline, fast - so load from other processes on a shared machine hits
both alike. Each figure is the median over the rounds and ``gain`` the median of the per-round
ratios (the two measurements of a round run back to back, in alternating order), which cancels
most of a shared machine's drifting load.

Figures (``figures`` in the JSON record; each has the keys below):

- ``train.<arch>.b<batch>``: training throughput, img/s (higher is better).
- ``draw.b<batch>``: data draw rate, img/s of batches ready on the device.
- ``eval.b<batch>``: encoder throughput, img/s (``engine.analysis.encode.encode_table``
  against a ``no_grad`` loop over a DataLoader).
- ``first_step``: seconds from launching ``bvae train`` on the prepared dataset to its first
  optimiser step (the first metrics row, with ``--log-every 1``); baseline: a textbook script
  that loads the dataset as a float32 tensor and takes a step (engine/bench/first_step.py).
- ``peak_rss``: peak resident memory (bytes, ``ru_maxrss`` of the finished child) of those two
  training processes.

Record keys: ``schema`` (1), ``device`` ("cpu" / "cuda:N"), ``device_name`` (CPU model or GPU
name), ``host``, ``torch``, ``threads``, ``cpus``, ``quick``, ``dataset``, ``dataset_source``,
``baseline_images`` (images in the textbook loop's TensorDataset), ``seconds`` (total),
``load`` (the 1-minute load average at the start and at the end: other work on the machine),
``figures`` (list of {``key``, ``what``, ``unit``, ``higher_is_better``, ``fast``, ``baseline``,
``gain`` (how many times better the fast path is: fast/baseline, or baseline/fast where lower is
better; for throughputs the median of the per-round ratios), ``note``}), ``targets`` (list of
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
from collections.abc import Callable
from typing import Any

from bvae_tui.datasets.loader import dataset_status
from bvae_tui.datasets.prepare import open_dataset
from bvae_tui.engine.bench.children import Child
from bvae_tui.engine.bench.first_step import first_step_baseline, first_step_fast
from bvae_tui.engine.bench.report import (
    SCHEMA,
    available_memory,
    figure,
    load_average,
    targets,
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
                "e2e_repeats": 1, "log_every": 5}
    return {"dataset": "dsprites", "archs": ("H", "B"),
            "batches": (64, 256, 1024, 4096) if cuda else (32, 64, 256),
            "seconds": 1.0, "rounds": 7, "warmup": 3, "draw_batch": 64, "eval_batch": 512,
            "eval_images": 131072 if cuda else 4096, "baseline_images": 20000,
            "e2e_iterations": 20, "e2e_repeats": 3, "log_every": 100}


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
        "figures": [], "targets": [],
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
        def interleaved(op: str, **kw: Any) -> tuple[float, float, float]:
            """Paired rounds, the order alternating (ABBA): medians and the median ratio."""
            fs, bs = [], []
            for i in range(p["rounds"]):
                if i % 2 == 0:
                    bs.append(base.ask(op, **kw))
                    fs.append(fast.ask(op, **kw))
                else:
                    fs.append(fast.ask(op, **kw))
                    bs.append(base.ask(op, **kw))
            return (statistics.median(fs), statistics.median(bs),
                    statistics.median(f / b for f, b in zip(fs, bs, strict=True)))

        for batch in p["batches"]:
            for arch in p["archs"]:
                say(f"training throughput: arch {arch}, batch {batch}")
                f, b, g = interleaved("train", arch=arch, batch=batch, seconds=p["seconds"],
                                      warmup=p["warmup"], log_every=p["log_every"])
                figures.append(figure(f"train.{arch}.b{batch}",
                                       f"training, arch {arch}, batch {batch}", "img/s", f, b,
                                       gain=g))
        say("data draw rate")
        f, b, g = interleaved("draw", batch=p["draw_batch"], seconds=p["seconds"] / 2,
                              warmup=p["warmup"])
        figures.append(figure(f"draw.b{p['draw_batch']}",
                               f"data draw, batch {p['draw_batch']}", "img/s", f, b, gain=g))
        say("eval throughput")
        f, b, g = interleaved("eval", batch=p["eval_batch"], images=p["eval_images"])
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
        t_fast = statistics.median(t for t, _ in runs)
        rss_fast = max(r for _, r in runs)
        times = ", ".join(f"{t:.2f}" for t, _ in runs)
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
                               t_fast, t_base, higher_is_better=False,
                               note="; ".join(x for x in (f"bvae: median of {times} s", note)
                                              if x)))
        figures.append(figure("peak_rss", f"peak RSS of training ({name})", "bytes",
                               float(rss_fast), float(rss_base), higher_is_better=False,
                               note=note))

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
