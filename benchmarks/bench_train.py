"""Run the full `bvae bench` and keep its record: the figures behind benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/bench_train.py [--device cpu|cuda:N|auto] [--data-dir DIR]
                                               [--out benchmarks/results]

Prints the table of `bvae bench` and writes the JSON record (keys documented in
engine/bench/suite.py) to ``<out>/<host>-<device>-<UTC time>.json``. Every figure is measured
beside the textbook PyTorch loop in the same invocation; on a machine shared with other jobs
quote the ratios ("gain"), which interleaving keeps fair, rather than the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (checks the machinery)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))

    from bvae_tui.engine.bench.report import format_gain, format_value
    from bvae_tui.engine.bench.suite import run_bench
    from bvae_tui.engine.runs.devices import resolve_device

    device = resolve_device(args.device)
    record = run_bench(device, quick=args.quick, data_dir=args.data_dir,
                       progress=lambda m: print(f"... {m}", file=sys.stderr, flush=True))
    print(f"{record['device']} ({record['device_name']}), {record['threads']} threads, "
          f"torch {record['torch']}, dataset {record['dataset']} ({record['dataset_source']})")
    for fig in record["figures"]:
        print(f"  {fig['what']:<44} {format_value(fig['fast'], fig['unit']):>14} "
              f"{format_value(fig['baseline'], fig['unit']):>14} {format_gain(fig['gain']):>7}")
    for target in record["targets"]:
        print(f"  target {target['what']} {target['target']}: "
              f"{'ok' if target['ok'] else 'MISSED'} ({target['value']:.3g})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = out / f"{record['host']}-{device.replace(':', '')}-{stamp}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"record: {path}")


if __name__ == "__main__":
    main()
