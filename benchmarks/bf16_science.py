"""Does bf16 change the science? The same seeds trained in float32 and in bf16, side by side.

For every seed, ``bvae train`` (the real command, foreground) trains the same preset twice,
``--amp off`` and ``--amp bf16``, then ``bvae eval --fast`` scores each run. The record compares
the final loss, recon, KL, the KL per latent (sorted, as latents are interchangeable between
runs) and the scores two ways:

- *seed noise*: how far float32 runs of different seeds land from each other (mean absolute
  difference over the pairs of seeds);
- *bf16 gap*: how far the bf16 run lands from the float32 run of the same seed (mean over seeds).

bf16 "does not change the science" where the gap is within the seed noise. Runs already finished
under ``--runs-dir`` (found by name) are reused and stopped ones resumed, so an interrupted study
continues where it stopped. On a device without bf16 hardware the bf16 runs need
``--allow-emulated`` (slow: see engine/train/precision.py). There ``--at N`` compares the
metrics rows of iteration N and scores runs stopped (``bvae stop``) just past it as they are, so
the float32 runs can be trained to N while the slow bf16 runs are cut there.

    .venv/bin/python benchmarks/bf16_science.py --device cpu --iterations 3000 --seeds 1 2 3

writes ``benchmarks/results/bf16-science-<host>-<device>-<stamp>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
AMPS = ("off", "bf16")
SCALARS = ("loss", "recon", "kl")
SCORES = ("betavae", "factorvae", "mig")


def bvae(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("bvae")
    proc = subprocess.run([str(script), *args], env=env, text=True, stdout=subprocess.PIPE)
    if proc.returncode != 0:
        raise SystemExit(f"bvae {' '.join(args)} failed (exit {proc.returncode})")
    return proc


def find_run(runs_dir: Path, name: str) -> Path | None:
    for path in sorted(runs_dir.glob("*/config.json")):
        if json.loads(path.read_text()).get("name") == name:
            return path.parent
    return None


def train(args: argparse.Namespace, seed: int, amp: str) -> tuple[Path, float]:
    """The run of ``seed`` in ``amp`` (trained, resumed or found finished); its wall seconds."""
    name = f"sci-{args.preset}-{amp}-s{seed}"
    env = dict(os.environ)
    if amp == "bf16" and args.allow_emulated:
        env["BVAE_ALLOW_EMULATED_BF16"] = "1"
    common = ["--runs-dir", str(args.runs_dir)]
    run = find_run(args.runs_dir, name)
    start = time.perf_counter()
    if run is None:
        bvae("train", "--preset", args.preset, "--device", args.device, "--amp", amp,
             "--seed", str(seed), "--iterations", str(args.iterations),
             "--batch-size", str(args.batch_size), "--log-every", "100", "--preview-every", "0",
             "--checkpoint-every", "500", "--name", name, *common,
             *(["--data-dir", args.data_dir] if args.data_dir else []), env=env)
        run = find_run(args.runs_dir, name)
        assert run is not None
    elif json.loads((run / "status.json").read_text()).get("state") != "finished" \
            and not (args.at and _row_at(run, args.at)):  # stopped past --at: enough
        bvae("resume", str(run), *common, env=env)
    return run, time.perf_counter() - start


def _rows(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _row_at(run: Path, at: int) -> dict[str, Any] | None:
    return next((r for r in _rows(run) if r["iter"] == at), None)


def summary(run: Path, args: argparse.Namespace) -> dict[str, Any]:
    rows = _rows(run)
    last = (_row_at(run, args.at) if args.at else None) or rows[-1]
    checkpoint = json.loads((run / "status.json").read_text()).get("iteration")
    if not (run / "eval.json").exists() or not json.loads(
            (run / "eval.json").read_text()).get("fast"):
        bvae("eval", str(run), "--fast", "--json", "--runs-dir", str(args.runs_dir))
    scores = json.loads((run / "eval.json").read_text()).get("scores", {})
    config = json.loads((run / "config.json").read_text())
    return {"run": run.name, "iter": last["iter"], "checkpoint_iter": checkpoint,
            **{k: last[k] for k in SCALARS},
            "kl_sorted": sorted(last["kl_per_latent"], reverse=True),
            "img_per_s": statistics.median(r["img_per_s"] for r in rows),
            "precision": config.get("precision"), **{k: scores.get(k) for k in SCORES}}


def distance(a: dict[str, Any], b: dict[str, Any], key: str) -> float | None:
    if key == "kl_sorted":  # L1 distance of the sorted KL-per-latent profiles, in nats
        return sum(abs(x - y) for x, y in zip(a[key], b[key], strict=True))
    if a[key] is None or b[key] is None:
        return None
    return abs(a[key] - b[key])


def compare(results: dict[int, dict[str, dict[str, Any]]]) -> dict[str, dict[str, float | None]]:
    seeds = sorted(results)
    out = {}
    for key in (*SCALARS, "kl_sorted", *SCORES):
        noise = [distance(results[s]["off"], results[t]["off"], key)
                 for s, t in itertools.combinations(seeds, 2)]
        gap = [distance(results[s]["bf16"], results[s]["off"], key) for s in seeds
               if "bf16" in results[s]]
        noise_v = [v for v in noise if v is not None]
        gap_v = [v for v in gap if v is not None]
        n = statistics.mean(noise_v) if noise_v else None
        g = statistics.mean(gap_v) if gap_v else None
        out[key] = {"seed_noise": n, "bf16_gap": g,
                    "within_noise": None if n is None or g is None else g <= n}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default="dsprites-H")
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--at", type=int,
                        help="compare the metrics row of this iteration (a multiple of the log "
                             "interval, 100), and take runs stopped past it as they are: a study "
                             "cut short where bf16 is emulated and slow")
    parser.add_argument("--bf16-seeds", type=int, nargs="+",
                        help="the seeds also trained in bf16 (default: every seed; fewer where "
                             "bf16 is emulated and slow)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs-bf16-science"))
    parser.add_argument("--data-dir")
    parser.add_argument("--allow-emulated", action="store_true",
                        help="train bf16 where the hardware lacks it (slow)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if len(args.seeds) < 2:
        parser.error("the seed noise needs at least two seeds")
    args.runs_dir = args.runs_dir.resolve()
    results: dict[int, dict[str, dict[str, Any]]] = {}
    seconds: dict[str, float] = {}
    bf16_seeds = args.bf16_seeds or args.seeds
    if not set(bf16_seeds) <= set(args.seeds):
        parser.error("--bf16-seeds must be among --seeds")
    for amp in AMPS:  # every float32 run first: the seed noise is known early
        for seed in args.seeds if amp == "off" else bf16_seeds:
            run, took = train(args, seed, amp)
            seconds[run.name] = took
            results.setdefault(seed, {})[amp] = summary(run, args)
            print(f"seed {seed} {amp}: {json.dumps(results[seed][amp])}", file=sys.stderr,
                  flush=True)
    comparison = compare(results)
    record = {"device": args.device, "host": platform.node(), "preset": args.preset,
              "iterations": args.iterations, "at": args.at, "batch_size": args.batch_size,
              "seeds": args.seeds,
              "bf16_seeds": bf16_seeds,
              "allow_emulated": args.allow_emulated, "load": os.getloadavg()[0],
              "runs": {str(s): r for s, r in results.items()}, "seconds": seconds,
              "comparison": comparison}
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = args.out / f"bf16-science-{platform.node()}-{args.device.replace(':', '')}-{stamp}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print("| quantity | seed noise (fp32 vs fp32) | bf16 gap (bf16 vs fp32, same seed) | "
          "within noise |\n|---|---:|---:|:---:|")
    for key, c in comparison.items():
        def fmt(v: float | None) -> str:
            return "-" if v is None else f"{v:.4g}"
        print(f"| {key} | {fmt(c['seed_noise'])} | {fmt(c['bf16_gap'])} | "
              f"{'-' if c['within_noise'] is None else ('yes' if c['within_noise'] else 'NO')} |")
    print(f"record: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
