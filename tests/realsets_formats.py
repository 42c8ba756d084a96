"""Tiny SmallNORB, Cars3D and MPI3D files in each real format, on reduced factor grids.

Every image carries its grid row in its pixels (a constant value away from a corner marker),
so a test reads back which image landed where, and a bright marker in the top-left corner shows
the orientation survived. Each writer returns the expected image per grid row.
"""

from __future__ import annotations

import gzip
import io
import itertools
import math
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np

UBYTE, INT = 0x1E3D4C55, 0x1E3D4C54

# Reduced grids (the real ones: datasets/realsets_files.py)
NORB_SIZES = (2, 2, 2, 3, 2)  # category, instance, elevation, azimuth, lighting: 48 images
CARS_SIZES = (2, 3, 2)  # elevation, azimuth, car: 12 images
MPI_SIZES = (2, 2, 1, 1, 2, 2, 3)  # 48 images
NORB_TRAIN = "smallnorb-5x46789x9x18x6x2x96x96-training"
NORB_TEST = "smallnorb-5x01235x9x18x6x2x96x96-testing"


def grid_value(row: int) -> int:
    """The grey level an image of grid row ``row`` is filled with (never the marker's 255)."""
    return 10 + (row * 7) % 200


def _grid_rows(sizes) -> list[tuple[int, ...]]:
    return list(itertools.product(*[range(s) for s in sizes]))


def matrix_bytes(magic: int, arr: np.ndarray) -> bytes:
    """A SmallNORB binary matrix: magic, ndim, max(3, ndim) dims (int32 LE), then the data."""
    dims = list(arr.shape) + [1] * max(0, 3 - arr.ndim)
    head = struct.pack(f"<ii{len(dims)}i", magic, arr.ndim, *dims)
    return head + np.ascontiguousarray(arr, dtype=np.uint8 if magic == UBYTE else "<i4").tobytes()


def smallnorb_files(sizes=NORB_SIZES, seed: int = 0) -> tuple[dict[str, bytes], np.ndarray]:
    """{file name: gzipped bytes} of both halves (instance 0 in testing, the rest in training,
    each half shuffled), and the expected (N, 64, 64) first-camera images' fill per grid row."""
    rng = np.random.RandomState(seed)
    rows = _grid_rows(sizes)
    files: dict[str, bytes] = {}
    for prefix, keep in ((NORB_TRAIN, lambda inst: inst != 0), (NORB_TEST, lambda i: i == 0)):
        mine = [(i, r) for i, r in enumerate(rows) if keep(r[1])]
        order = rng.permutation(len(mine))
        mine = [mine[k] for k in order]
        dat = np.zeros((len(mine), 2, 96, 96), np.uint8)
        cat = np.zeros(len(mine), np.int32)
        info = np.zeros((len(mine), 4), np.int32)
        for j, (i, (c, inst, el, az, light)) in enumerate(mine):
            dat[j, 0] = grid_value(i)
            dat[j, 0, :32, :32] = 255  # top-left marker of the first camera
            dat[j, 1] = 3  # the second camera: never used
            cat[j] = c
            info[j] = (inst, el, 2 * az, light)  # azimuth is stored as 0, 2, 4, ...
        files[f"{prefix}-dat.mat.gz"] = gzip.compress(matrix_bytes(UBYTE, dat))
        files[f"{prefix}-cat.mat.gz"] = gzip.compress(matrix_bytes(INT, cat))
        files[f"{prefix}-info.mat.gz"] = gzip.compress(matrix_bytes(INT, info))
    return files, np.array([grid_value(i) for i in range(len(rows))])


def _mat(im: np.ndarray) -> bytes:
    from scipy.io import savemat

    buf = io.BytesIO()
    savemat(buf, {"im": im, "mask": np.ones(im.shape[:2] + im.shape[3:], np.uint8)})
    return buf.getvalue()


def cars3d_archive(sizes=CARS_SIZES, listed: bool = True) -> tuple[bytes, list[str]]:
    """nips2015-analogy-data.tar.gz's layout: data/cars/<car>.mat (im uint8 (128, 128, 3, az,
    el)) in an unsorted order, list.txt (the class order) and another data set's file."""
    el, az, cars = sizes
    names = [f"car_{k:03d}_mesh" for k in range(cars)][::-1]  # class order: reversed names
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("data/shapes48.mat", b"not a car")
        for car in sorted(range(cars), key=lambda k: names[k]):  # tar order: sorted by name
            im = np.zeros((128, 128, 3, az, el), np.uint8)
            for a in range(az):
                for e in range(el):
                    row = (e * az + a) * cars + car
                    im[:, :, :, a, e] = (grid_value(row), 5, 200)
                    im[:48, :48, :, a, e] = (255, 0, 0)  # top-left red marker
            add(f"data/cars/{names[car]}.mat", _mat(im))
        if listed:
            add("data/cars/list.txt", "".join(n + "\n" for n in names).encode())
    return out.getvalue(), names


def mpi3d_npz(sizes=MPI_SIZES, compress: bool = False, rows: int | None = None) -> bytes:
    """An npz holding images uint8 (N, 64, 64, 3) in grid order (``rows``: write fewer rows
    than the header says, as a truncated download would be)."""
    n = math.prod(sizes)
    images = np.zeros((n, 64, 64, 3), np.uint8)
    for i in range(n):
        images[i] = (grid_value(i), 1, 2)
        images[i, :16, :16] = (255, 255, 0)
    out = io.BytesIO()
    if rows is None:
        (np.savez_compressed if compress else np.savez)(out, images=images)
        return out.getvalue()
    with zipfile.ZipFile(out, "w") as zf, zf.open("images.npy", "w") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "|u1", "fortran_order": False, "shape": images.shape})
        fh.write(images[:rows].tobytes())
    return out.getvalue()


def write_all(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).write_bytes(data)
