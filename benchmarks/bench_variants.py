"""What drawing a dSprites variant per batch costs (not a test): milliseconds per training batch
of the binary sprites alone (``dsprites-mini``'s ``DeviceImages.batch``) and of each variant on
top of it, on the CPU and on a GPU when there is one.

    .venv/bin/python benchmarks/bench_variants.py [--batch 64] [--repeats 50] [--threads 1]
                                                  [--json]

Uses a procedural dsprites-mini cache in a temp dir and a generated stand-in for The Scream
(the cost does not depend on the painting's content; a 220x274 image, the shrunk painting's
size).
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def _painting(root: Path) -> None:
    rng = np.random.RandomState(0)
    img = rng.randint(0, 256, (274, 220, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(img).save(out, format="JPEG", quality=90)
    (root / "scream.jpg").write_bytes(out.getvalue())


def _ms_per_batch(data, idx_batches, device: str) -> tuple[float, float]:
    """(wall, process CPU) milliseconds per batch. On a loaded machine the CPU time is the
    steadier figure (the wall time counts the waits for a core)."""
    data.batch(idx_batches[0])  # warm-up (and the background's upload)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start, cpu = time.perf_counter(), time.process_time()
    for idx in idx_batches:
        data.batch(idx)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    n = len(idx_batches)
    return ((time.perf_counter() - start) / n * 1000, (time.process_time() - cpu) / n * 1000)


def main() -> None:
    from bvae_tui.datasets.prepare import open_dataset, prepare
    from bvae_tui.datasets.tensors import DeviceImages

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        prepare("dsprites-mini", root)
        _painting(root)
        rng = np.random.RandomState(0)
        for device in devices:
            for name in ("dsprites-mini", "color-dsprites-mini", "noisy-dsprites-mini",
                         "scream-dsprites-mini"):
                ds = open_dataset(name, root, prepare_missing=False)
                data = DeviceImages(ds, device)
                batches = [torch.from_numpy(rng.randint(ds.n, size=args.batch)).to(device)
                           for _ in range(args.repeats)]
                wall, cpu = _ms_per_batch(data, batches, device)
                rows.append({"device": device, "dataset": name, "batch": args.batch,
                             "wall_ms": round(wall, 3), "cpu_ms": round(cpu, 3)})
    if args.json:
        print(json.dumps({"threads": torch.get_num_threads(), "rows": rows}, indent=1))
        return
    print(f"torch threads: {torch.get_num_threads()}")
    for r in rows:
        print(f"{r['device']:5} {r['dataset']:22} batch {r['batch']:5}: "
              f"{r['wall_ms']:8.3f} ms wall, {r['cpu_ms']:8.3f} ms CPU")


if __name__ == "__main__":
    main()
