"""Probe benchmark (not a test): the probes' share of training time at the default interval.

    .venv/bin/python benchmarks/bench_probes.py [--iterations 600] [--every 200]
        [--dataset dsprites-mini] [--arch H] [--data-dir DIR] [--json]

Trains one run in the real training loop (``engine/train/trainer.py``: batch 64, z 10, CPU,
the defaults), probing every ``--every`` steps so that a short run holds several probes. The
probe's cost is its rows' ``seconds`` (sample drawn at the first, encode, MI and MIG, the row
written); a step's cost comes from the metrics rows' ``img_per_s``, which leaves probes,
checkpoints and previews out. The share at the default interval is then

    probe / (PROBE_EVERY x step + probe)

A probe encodes a fixed 3,072 images whatever the dataset's size, and a step's cost depends on
the batch and the model, not on the dataset: dsprites-mini (4,608 images, prepared in seconds)
measures what full dSprites would.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(iterations: int, every: int, dataset: str, arch: str,
            data_dir: str | None) -> dict:
    from bvae_tui.datasets.prepare import prepare
    from bvae_tui.engine.config import PROBE_EVERY, make_config
    from bvae_tui.engine.runs.store import create_run
    from bvae_tui.engine.train.trainer import train

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(data_dir) if data_dir else Path(tmp) / "data"
        prepare(dataset, data)
        cfg = make_config(dataset=dataset, device="cpu", arch=arch, iterations=iterations,
                          log_every=min(100, every), probe_every=every, preview_every=0,
                          checkpoint_every=10**9, checkpoint_minutes=0.0, amp="off")
        run = create_run(Path(tmp) / "runs", cfg, data)
        if train(run) != "finished":
            raise SystemExit(f"training failed: {run.raw_status().error}")
        probes = [r.seconds for r in run.probes() if r.seconds is not None]
        rates = [r.img_per_s for r in run.metrics()[1:] if r.img_per_s]  # first: warm-up
        step_s = cfg.batch_size / statistics.median(rates)
        later = probes[1:] or probes  # the first also draws the sample, once per run
        probe_s = statistics.median(later)
        return {"dataset": dataset, "arch": arch, "batch_size": cfg.batch_size,
                "z_dim": cfg.z_dim, "iterations": iterations, "probes": len(probes),
                "first_probe_s": round(probes[0], 3), "probe_s": round(probe_s, 3),
                "step_s": round(step_s, 5), "default_every": PROBE_EVERY,
                "share": round(probe_s / (PROBE_EVERY * step_s + probe_s), 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--every", type=int, default=200)
    parser.add_argument("--dataset", default="dsprites-mini")
    parser.add_argument("--arch", default="H", choices=("H", "B"))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args.iterations, args.every, args.dataset, args.arch, args.data_dir)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['dataset']}, arch {result['arch']}, batch {result['batch_size']}: "
              f"a step {1000 * result['step_s']:.1f} ms, a probe {result['probe_s']:.2f} s "
              f"(the first, drawing the sample: {result['first_probe_s']:.2f} s); every "
              f"{result['default_every']} steps the probes take "
              f"{100 * result['share']:.2f}% of training time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
