"""Helpers for caches of full factor grids whose source files are not in grid order.

:class:`GridWriter` writes each image straight to its row of the grid (SmallNORB and Cars3D
arrive in their own orders), so no data set is held in memory to be sorted; it refuses a row
written twice and a grid left with holes. :func:`check_disk` says, before anything is written,
how much a cache needs when the disk does not have it. :func:`grid_tables` makes the classes and
values tables of a C-order grid (last factor fastest, as :class:`datasets.loader.Dataset` reads
them).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bvae_tui.datasets import cache
from bvae_tui.datasets.cache import _npy_header
from bvae_tui.datasets.errors import DataError

_MARGIN = 64 << 20  # room left for meta.json, the run directories and the file system itself
_HASH_CHUNK = 64 << 20


def cache_bytes(n: int, row_bytes: int, factors: int) -> int:
    """Bytes a cache of ``n`` images of ``row_bytes`` each and ``factors`` factors takes."""
    return n * row_bytes + 2 * n * factors * 8 + 3 * 4096


def _human(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def check_disk(root: Path, need: int, name: str) -> None:
    """A one-line DataError when the disk under ``root`` has less than ``need`` bytes free."""
    try:
        free = shutil.disk_usage(root).free
    except OSError:
        return  # cannot tell: writing will say so if it runs out (cache.building cleans up)
    if free < need + _MARGIN:
        raise DataError(f"not enough disk for the {name} cache in {root}: it needs "
                        f"{_human(need + _MARGIN)}, {_human(free)} are free; free space or pass "
                        "--data-dir (or set BVAE_DATA_DIR) to a larger disk")


def grid_tables(sizes: Sequence[int], values: Sequence[np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray]:
    """(classes int64 (N, F), values float64 (N, F)) of the full grid in C order."""
    sizes = tuple(int(s) for s in sizes)
    n = math.prod(sizes)
    classes = np.empty((n, len(sizes)), dtype=np.int64)
    vals = np.empty((n, len(sizes)), dtype=np.float64)
    for f, size in enumerate(sizes):
        inner = math.prod(sizes[f + 1 :])
        col = (np.arange(n, dtype=np.int64) // inner) % size
        classes[:, f] = col
        vals[:, f] = np.asarray(values[f], dtype=np.float64)[col]
    return classes, vals


def save_grid_tables(directory: Path, sizes: Sequence[int], values: Sequence[np.ndarray]
                     ) -> None:
    """Write the full grid's classes and values (:func:`grid_tables`) into a cache being built,
    the classes freed before the values are written (MPI3D's tables are 58 MB each)."""
    classes, vals = grid_tables(sizes, values)
    cache.save_array(directory / cache.CLASSES, classes)
    del classes
    cache.save_array(directory / cache.VALUES, vals)


def grid_index(classes: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Row of each (M, F) class vector in the C-order grid of ``sizes``."""
    strides = [math.prod(sizes[f + 1 :]) for f in range(len(sizes))]
    return np.asarray(classes, dtype=np.int64) @ np.asarray(strides, dtype=np.int64)


class GridWriter:
    """A ``(n, *row_shape)`` uint8 .npy whose rows are written in any order, each once."""

    def __init__(self, path: Path, n: int, row_shape: tuple[int, ...]):
        self.path = path
        self.n = int(n)
        self.row_shape = tuple(int(s) for s in row_shape)
        self.row_bytes = math.prod(self.row_shape)
        self.filled = np.zeros(self.n, dtype=bool)
        header = _npy_header((self.n, *self.row_shape), np.uint8)
        self._offset = len(header)
        self._fh = open(path, "wb")  # noqa: SIM115 (closed in close() / abort())
        self._fh.write(header)
        self._fh.truncate(self._offset + self.n * self.row_bytes)  # sparse until written

    @property
    def rows(self) -> int:
        return int(self.filled.sum())

    def put(self, index: np.ndarray, rows: np.ndarray) -> None:
        """Write ``rows[i]`` at grid row ``index[i]``; a row already written is refused."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        rows = np.ascontiguousarray(rows, dtype=np.uint8)
        if rows.shape != (len(index), *self.row_shape):
            raise ValueError(f"rows of shape {rows.shape}, expected "
                             f"({len(index)}, {self.row_shape})")
        if len(index) and (index.min() < 0 or index.max() >= self.n):
            raise DataError(f"a factor class out of the grid of {self.n} images")
        if self.filled[index].any() or len(np.unique(index)) != len(index):
            raise DataError("two images have the same factor classes")
        fd = self._fh.fileno()
        for i, row in zip(index.tolist(), rows, strict=True):
            os.pwrite(fd, row.data, self._offset + i * self.row_bytes)
        self.filled[index] = True

    def close(self) -> str:
        """Check every row was written, flush, and return the sha1 of the data bytes."""
        if not self.filled.all():
            missing = int((~self.filled).sum())
            raise DataError(f"{missing} of the {self.n} factor combinations have no image")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        sha1 = hashlib.sha1()
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            while block := fh.read(_HASH_CHUNK):
                sha1.update(block)
        return sha1.hexdigest()

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()
