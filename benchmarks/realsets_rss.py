"""Peak RSS of preparing an MPI3D npz, at growing image counts: it must not grow with the file.

Writes synthetic ``mpi3d_toy.npz`` files in the real format (``images.npy`` uint8 (N, 64, 64, 3)
inside a zip, streamed so this script never holds one either) on sub-grids of MPI3D's, then
prepares each in a fresh child process (the registry's grid swapped for the sub-grid) and
prints that child's peak resident set during the prepare (VmHWM, reset through
/proc/self/clear_refs just before it, so imports do not count) against N (Linux only)::

    .venv/bin/python benchmarks/realsets_rss.py [--dir /tmp/rss] [--keep]

Each N needs about 2 x N x 12 kB of disk (the npz and the cache).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

GRIDS = [(6, 1, 2, 3, 1, 40, 40), (6, 2, 2, 3, 1, 40, 40), (6, 6, 2, 3, 1, 40, 40)]

_CHILD = r"""
import dataclasses, json, sys, time
from bvae_tui.datasets import registry
from bvae_tui.datasets.prepare import prepare

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024  # kB -> MiB

sizes = tuple(json.loads(sys.argv[2]))
spec = registry.get_spec("mpi3d-toy")
registry._SPECS["mpi3d-toy"] = dataclasses.replace(spec, factor_sizes=sizes)
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as fh:  # reset the peak (VmHWM) to the current RSS
    fh.write("5")
t0 = time.perf_counter()
ds = prepare("mpi3d-toy", sys.argv[1])
print(json.dumps({"n": ds.n, "seconds": round(time.perf_counter() - t0, 1),
                  "rss_before_mib": round(before, 1),
                  "peak_rss_mib": round(status("VmHWM"), 1),
                  "prepare_adds_mib": round(status("VmHWM") - before, 1)}))
"""


def write_npz(path: Path, n: int, chunk: int = 4096) -> None:
    rng = np.random.RandomState(0)
    with zipfile.ZipFile(path, "w", allowZip64=True) as zf, \
            zf.open("images.npy", "w", force_zip64=True) as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "|u1", "fortran_order": False, "shape": (n, 64, 64, 3)})
        block = rng.randint(0, 256, size=(chunk, 64, 64, 3)).astype(np.uint8)
        for start in range(0, n, chunk):
            fh.write(block[: min(chunk, n - start)].tobytes())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="rss-"))
    rows = []
    for sizes in GRIDS:
        root = base / f"n{math.prod(sizes)}"
        root.mkdir(parents=True, exist_ok=True)
        write_npz(root / "mpi3d_toy.npz", math.prod(sizes))
        out = subprocess.run([sys.executable, "-c", _CHILD, str(root), json.dumps(sizes)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
        if not args.keep:
            shutil.rmtree(root)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
