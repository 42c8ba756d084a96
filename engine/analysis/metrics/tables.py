"""Representation tables: what every metric reads, by dataset index, and chunked gathering."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

# Bytes of gathered representations held at once while scoring (keeps raw pixels, 4096 floats an
# image, from needing gigabytes).
CHUNK_BYTES = 64 << 20


class Table(Protocol):
    """Representations by dataset index: ``table(idx)`` -> ``idx.shape + (dim,)`` floats."""

    dim: int

    def __call__(self, idx: np.ndarray) -> np.ndarray: ...


class CodeTable:
    """Precomputed codes for a set of dataset indices (or for every index of the dataset).

    ``codes[i]`` is the representation of dataset index ``indices[i]``; with ``indices=None``
    ``codes`` covers the whole dataset in order. Looking up an index that was not encoded is a
    programming error (the planner asked for too little) and raises ``KeyError``.
    """

    def __init__(self, codes: np.ndarray, indices: np.ndarray | None = None,
                 n: int | None = None):
        self.codes = np.asarray(codes)
        if self.codes.ndim != 2:
            raise ValueError(f"codes must be 2-D (items, dim), got shape {self.codes.shape}")
        self.dim = int(self.codes.shape[1])
        self._pos: np.ndarray | None = None
        if indices is not None:
            indices = np.asarray(indices, dtype=np.int64)
            if len(indices) != len(self.codes):
                raise ValueError("codes and indices differ in length")
            size = int(n if n is not None else (indices.max() + 1 if len(indices) else 0))
            self._pos = np.full(size, -1, dtype=np.int64)
            self._pos[indices] = np.arange(len(indices))

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        if self._pos is None:
            return self.codes[idx]
        rows = self._pos[idx]
        if (rows < 0).any():
            raise KeyError("representation table lacks some requested indices")
        return self.codes[rows]


class FunctionTable:
    """Representations computed on each lookup (raw pixels: far too large to tabulate)."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], dim: int):
        self.fn = fn
        self.dim = int(dim)

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        flat = self.fn(idx.reshape(-1))
        return np.asarray(flat).reshape(*idx.shape, self.dim)


def permuted(table: Table, order: Sequence[int]) -> Table:
    """``table`` with its latents reordered (for tests and comparisons)."""
    order = np.asarray(order)
    return FunctionTable(lambda idx: table(idx)[..., order], len(order))


def rescaled(table: Table, scale: Sequence[float], shift: Sequence[float] | float = 0.0) -> Table:
    """``table`` with latent j mapped to ``scale[j] * z_j + shift[j]``."""
    s = np.asarray(scale, dtype=np.float64)
    b = np.broadcast_to(np.asarray(shift, dtype=np.float64), s.shape)
    return FunctionTable(lambda idx: table(idx) * s + b, table.dim)


def chunk_points(per_point_floats: int) -> int:
    """Points gathered at once so that their representations take about ``CHUNK_BYTES``."""
    return max(1, CHUNK_BYTES // max(1, 4 * per_point_floats))


def as_floats(x: np.ndarray) -> np.ndarray:
    """``x`` as floats, keeping float32 (network codes, pixels: half the memory traffic)."""
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float64)
