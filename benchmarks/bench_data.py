"""Data-path benchmark (not a test): full procedural dSprites generation, cache load time, memory.

    .venv/bin/python benchmarks/bench_data.py [--root DIR] [--keep] [--json]

Each step runs in a fresh subprocess so its time and peak memory are its own:
  generate  prepare("dsprites", force=True): render, bit-pack and write 737,280 images
  stats     pixel mean and mean per-image std over the prepared set (vs the real file's)
  load      open_dataset (memory-mapped) and one random batch of 64
  tensor    DeviceImages on the CPU: the training tensor, its bytes and the process's RSS growth
  export    the original npz format (bvae data export dsprites --format npz)
  photos    decode + centre-crop + resize of 600 CelebA-sized JPEGs (178x218) -> images/s
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL_MEAN, REAL_STD = 0.042494, 0.195166


def _rss() -> int:
    """Resident set size in bytes (anonymous + file-backed pages)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _anon() -> int:
    """Anonymous resident memory (what the process itself holds, not mapped file pages)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def _cpu() -> float:
    """CPU seconds of this process, all threads (robust when the machine is shared)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def step(name: str, root: str) -> dict:
    import numpy as np

    if name == "generate":
        from bvae_tui.datasets.prepare import prepare

        t, cpu = time.perf_counter(), _cpu()
        ds = prepare("dsprites", root, force=True)
        return {"seconds": time.perf_counter() - t, "cpu_seconds": _cpu() - cpu, "n": ds.n,
                "source": ds.source,
                "peak_rss": _peak(), "disk_bytes": sum(
                    p.stat().st_size for p in (Path(root) / "dsprites").iterdir())}
    if name == "stats":
        from bvae_tui.datasets.prepare import open_dataset

        ds = open_dataset("dsprites", root, prepare_missing=False)
        counts = np.concatenate([np.bitwise_count(ds.images[i:i + 65536]).sum(axis=1)
                                 for i in range(0, ds.n, 65536)]) / 4096.0
        mean = float(counts.mean())
        std = float(np.sqrt(counts * (1 - counts)).mean())
        return {"pixel_mean": mean, "mean_rel_err": mean / REAL_MEAN - 1,
                "per_image_std": std, "std_rel_err": std / REAL_STD - 1}
    if name == "load":
        t = time.perf_counter()
        from bvae_tui.datasets.prepare import open_dataset

        ds = open_dataset("dsprites", root, prepare_missing=False)
        t_open = time.perf_counter() - t
        idx = np.random.RandomState(0).randint(0, ds.n, 64)
        t = time.perf_counter()
        ds.float_images_at(idx)
        return {"open_seconds": t_open, "first_batch_seconds": time.perf_counter() - t}
    if name == "tensor":
        import torch

        from bvae_tui.datasets.prepare import open_dataset
        from bvae_tui.datasets.tensors import DeviceImages

        torch.set_num_threads(2)
        ds = open_dataset("dsprites", root, prepare_missing=False)
        before, before_anon = _rss(), _anon()
        t = time.perf_counter()
        dev = DeviceImages(ds, "cpu")
        seconds = time.perf_counter() - t
        grown, grown_anon = _rss() - before, _anon() - before_anon
        idx = torch.randint(0, dev.n, (64,))
        t = time.perf_counter()
        for _ in range(100):
            dev.batch(idx)
        per_batch = (time.perf_counter() - t) / 100
        return {"seconds": seconds, "tensor_bytes": dev.nbytes, "rss_growth": grown,
                "anon_growth": grown_anon,
                "rss_total": _rss(), "batch64_ms": per_batch * 1e3,
                "float32_equivalent_bytes": ds.n * 64 * 64 * 4}
    if name == "export":
        from bvae_tui.datasets.npz import export_npz
        from bvae_tui.datasets.prepare import open_dataset

        ds = open_dataset("dsprites", root, prepare_missing=False)
        out = Path(root) / "export.npz"
        t, cpu = time.perf_counter(), _cpu()
        export_npz(ds, out)
        res = {"seconds": time.perf_counter() - t, "cpu_seconds": _cpu() - cpu,
               "bytes": out.stat().st_size,
               "peak_rss": _peak()}
        out.unlink()
        return res
    if name == "photos":
        from PIL import Image

        from bvae_tui.datasets.prepare import prepare

        src = Path(root) / "photos"
        src.mkdir(exist_ok=True)
        rng = np.random.RandomState(0)
        for i in range(600):  # smooth noise compresses like a photo, not like a flat colour
            small = rng.randint(0, 255, (28, 23, 3), dtype=np.uint8)
            Image.fromarray(small).resize((178, 218), Image.Resampling.BICUBIC).save(
                src / f"{i:06d}.jpg", quality=90)
        t, cpu = time.perf_counter(), _cpu()
        ds = prepare(f"folder:{src}", root)
        seconds = time.perf_counter() - t
        return {"seconds": seconds, "cpu_seconds": _cpu() - cpu, "n": ds.n,
                "images_per_s": ds.n / seconds}
    raise SystemExit(f"unknown step {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", help="data dir to use (default: a temp dir, removed after)")
    ap.add_argument("--keep", action="store_true", help="keep the temp data dir")
    ap.add_argument("--json", action="store_true", help="print JSON only")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        print(json.dumps(step(args.step, args.root)))
        return
    root = args.root or tempfile.mkdtemp(prefix="bvae-bench-data-")
    results: dict[str, dict] = {}
    try:
        for name in ("generate", "stats", "load", "tensor", "export", "photos"):
            out = subprocess.run([sys.executable, __file__, "--step", name, "--root", root],
                                 cwd=ROOT, capture_output=True, text=True, check=True)
            results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        if not args.root and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    results["machine"] = {"cpus": len(os.sched_getaffinity(0)), "python": sys.version.split()[0],
                          "load_average": os.getloadavg()}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    g, s, ld, te, ex = (results[k] for k in ("generate", "stats", "load", "tensor", "export"))
    mb = 1 << 20
    m = results["machine"]
    print(f"machine: {m['cpus']} CPUs, load average {m['load_average'][0]:.1f} (wall times grow "
          "with other load; CPU seconds do not)")
    print(f"generate full dSprites ({g['n']:,} images, {g['source']}): {g['seconds']:.1f} s "
          f"wall, {g['cpu_seconds']:.1f} s CPU, "
          f"peak RSS {g['peak_rss'] / mb:.0f} MB, cache on disk {g['disk_bytes'] / mb:.0f} MB")
    print(f"pixel mean {s['pixel_mean']:.6f} ({s['mean_rel_err'] * 100:+.3f}% vs 0.042494), "
          f"mean per-image std {s['per_image_std']:.6f} ({s['std_rel_err'] * 100:+.3f}% vs "
          f"0.195166)")
    print(f"open prepared cache: {ld['open_seconds'] * 1e3:.1f} ms (memory-mapped), first "
          f"batch of 64: {ld['first_batch_seconds'] * 1e3:.1f} ms")
    print(f"training tensor (CPU): {te['tensor_bytes'] / mb:.0f} MB bit-packed vs "
          f"{te['float32_equivalent_bytes'] / 2**30:.1f} GB as float32; built in "
          f"{te['seconds']:.2f} s; RSS +{te['rss_growth'] / mb:.0f} MB (anonymous "
          f"+{te['anon_growth'] / mb:.0f} MB; process "
          f"{te['rss_total'] / mb:.0f} MB); batch of 64 unpacked: {te['batch64_ms']:.2f} ms")
    print(f"export npz: {ex['seconds']:.1f} s wall, {ex['cpu_seconds']:.1f} s CPU, "
          f"{ex['bytes'] / mb:.0f} MB, peak RSS "
          f"{ex['peak_rss'] / mb:.0f} MB")
    ph = results["photos"]
    print(f"photos (folder:/CelebA path): {ph['n']} JPEGs 178x218 in {ph['seconds']:.1f} s "
          f"wall ({ph['images_per_s']:.0f} img/s, {ph['cpu_seconds']:.1f} s CPU); CelebA's "
          f"202,599 would take ~{202599 / ph['images_per_s'] / 60:.0f} min at this rate")


if __name__ == "__main__":
    main()
