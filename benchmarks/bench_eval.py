"""Time a full default-size disentanglement evaluation of a dSprites run (every metric).

    .venv/bin/python benchmarks/bench_eval.py                 # a fresh H model (weights do not
                                                              # change the cost) on full dsprites
    .venv/bin/python benchmarks/bench_eval.py --run RUN       # an existing run (eval.json is
                                                              # not overwritten)
    .venv/bin/python benchmarks/bench_eval.py --fast --device cuda:0
    .venv/bin/python benchmarks/bench_eval.py --metrics dci,sap
    .venv/bin/python benchmarks/bench_eval.py --run RUN --exact   # disentanglement_lib's draws
                                                              # and trees, for the comparison

Prints the seconds spent sampling, encoding (images/s) and in each metric, wall and CPU (all
threads of the process: on a busy machine the CPU seconds are the cost, the wall seconds depend
on who else runs), and the total.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _temp_run(root: Path, dataset: str, data_dir: str | None, arch: str):
    """A run holding a checkpoint of a freshly initialised model, saved as the trainer would."""
    import torch

    from bvae_tui.datasets.registry import data_root
    from bvae_tui.engine.config import make_config
    from bvae_tui.engine.runs.store import create_run
    from bvae_tui.engine.train.checkpoint import save_checkpoint
    from bvae_tui.engine.train.models import build_model

    cfg = make_config(dataset=dataset, device="cpu", arch=arch)
    run = create_run(root, cfg, data_root(data_dir), name="bench-eval")
    torch.manual_seed(0)
    model = build_model(cfg.architecture, 1, cfg.z_dim)
    save_checkpoint(run.last_checkpoint, {"format": 1, "model": model.state_dict(),
                                          "iteration": 0, "arch": cfg.architecture,
                                          "channels": 1, "z_dim": cfg.z_dim,
                                          "config": cfg.to_dict()})
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="existing run (id, name or path) instead of a fresh model")
    ap.add_argument("--runs-dir", default=None)
    ap.add_argument("--dataset", default="dsprites")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--arch", default="H", choices=["H", "B"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fast", action="store_true", help="the --fast sample counts")
    ap.add_argument("--exact", action="store_true",
                    help="disentanglement_lib's own draws and trees (bvae eval --exact)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--metrics", default=None, help="subset, e.g. dci,sap (default: all)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    from bvae_tui.datasets.prepare import open_dataset
    from bvae_tui.engine.analysis.evaluate import evaluate_run
    from bvae_tui.engine.runs.store import find_run, runs_root

    t0 = time.perf_counter()
    ds = open_dataset(args.dataset, args.data_dir)  # prepares it when missing (not timed below)
    prep = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        run = (find_run(runs_root(args.runs_dir), args.run) if args.run
               else _temp_run(Path(tmp), args.dataset, args.data_dir, args.arch))
        start = time.perf_counter()
        cpu0 = time.process_time()
        result = evaluate_run(run, metrics=args.metrics, fast=args.fast, seed=args.seed,
                              device=args.device, write=False, exact=args.exact)
        cpu_total = time.process_time() - cpu0
        total = time.perf_counter() - start
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    report = {
        "dataset": ds.name, "images": ds.n, "run": args.run or "fresh H model",
        "device": result["device"], "fast": args.fast, "exact": args.exact,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "load_avg_1min_after": load, "open_or_prepare_s": round(prep, 2),
        "total_s": round(total, 2), "cpu_total_s": round(cpu_total, 2),
        "timings_s": result["timings"], "cpu_timings_s": result["cpu_timings"],
        "encoded": result["encoded"],
        "encode_img_per_s": round(result["encoded"] / max(1e-9, result["timings"]["encode"])),
        "scores": result["scores"],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    mode = "fast" if args.fast else "default"
    print(f"full evaluation ({mode} sample counts{', exact' if args.exact else ''}) of a "
          f"{report['run']} on {ds.name} ({ds.n:,} images), {report['device']}, "
          f"{report['cores']} cores, {report['torch_threads']} torch threads")
    print(f"  {'stage':<12} {'wall':>8}   {'CPU':>8}")
    for key, value in result["timings"].items():
        extra = (f"  ({report['encoded']:,} images, {report['encode_img_per_s']:,} img/s)"
                 if key == "encode" else "")
        cpu = result["cpu_timings"].get(key, float("nan"))
        print(f"  {key:<12} {value:8.1f} s {cpu:8.1f} s{extra}")
    print(f"  {'total':<12} {total:8.1f} s {cpu_total:8.1f} s   "
          f"(load average afterwards: {load})")
    print("  scores: " + ", ".join(f"{k} {v:.3f}" for k, v in result["scores"].items()))


if __name__ == "__main__":
    main()
