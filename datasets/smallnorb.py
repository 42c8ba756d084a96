"""SmallNORB (LeCun et al. 2004) from its six binary-matrix files into the grid cache.

Each half (training, testing) is three files, gzipped as published (plain ``.mat`` beside them
is read too): ``-dat`` uint8 (24300, 2, 96, 96), the stereo pair of each image; ``-cat`` int32
(24300,), the category; ``-info`` int32 (24300, 4): instance, elevation (0..8), azimuth (0, 2,
.., 34, i.e. 0..340 degrees by 20) and lighting (0..5). A matrix file starts with a magic
number giving its element type, the number of dimensions and at least three dimensions (int32,
little-endian).

As disentanglement_lib (data/ground_truth/norb.py) does: only the first camera's image, resized
from 96x96 to 64x64 (32x32 at ``--image-size 32``) with Pillow's Lanczos filter (its
``ANTIALIAS``), the factors category, instance, elevation, azimuth / 2 and lighting, and
instance as a nuisance: stored as a factor of the grid (so every image has its place) but not
scored, the metrics draw it at random for each observation (``nuisance_factors`` in
meta.json). Both halves together are the full grid of
5 x 10 x 9 x 18 x 6 = 48,600 images; they are written to their grid rows as they are read, so
memory holds one chunk of images, never the set.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from bvae_tui.datasets import cache, grid_cache
from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.realsets_files import SMALLNORB_HALVES, SMALLNORB_NUISANCE
from bvae_tui.datasets.registry import DatasetSpec

Progress = Callable[[str, int, "int | None"], None]

UBYTE_MAGIC = 0x1E3D4C55  # a matrix of uint8
INT_MAGIC = 0x1E3D4C54  # a matrix of int32
_CHUNK = 512  # images read and resized at a time (9 MB of stereo pairs)
_SIDE = 96


def _candidates(root: Path, prefix: str, part: str) -> list[Path]:
    return [root / f"{prefix}-{part}.mat.gz", root / f"{prefix}-{part}.mat"]


def find_sources(root: Path) -> dict[str, Path] | None:
    """``{"<half>-<part>": path}`` of all six files (gzipped or not), or None if one is missing."""
    found = {}
    for prefix in SMALLNORB_HALVES:
        for part in ("dat", "cat", "info"):
            path = next((p for p in _candidates(root, prefix, part) if p.is_file()), None)
            if path is None:
                return None
            found[f"{prefix}-{part}"] = path
    return found


def _bad(path: Path, why: str) -> DataError:
    return DataError(f"{path} is not a usable SmallNORB file ({why}); delete it and run "
                     "`bvae data download smallnorb`")


class MatrixReader:
    """Streams one binary matrix file (gzipped or not): header first, then rows on demand."""

    def __init__(self, path: Path, magic: int):
        self.path = path
        try:
            self._fh = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")  # noqa: SIM115
        except OSError as exc:
            raise _bad(path, exc.strerror or str(exc)) from None
        try:
            self.shape = self._header(magic)
        except BaseException:
            self._fh.close()  # refused: nobody else will close it
            raise
        self.itemsize = 1 if magic == UBYTE_MAGIC else 4
        self.dtype = np.dtype(np.uint8) if magic == UBYTE_MAGIC else np.dtype("<i4")

    def _header(self, magic: int) -> tuple[int, ...]:
        got, ndim = struct.unpack("<ii", self._read(8, "header"))
        if got != magic:
            raise _bad(self.path, f"magic number {got:#x}, expected {magic:#x}")
        if not 1 <= ndim <= 8:
            raise _bad(self.path, f"{ndim} dimensions")
        dims = struct.unpack(f"<{max(3, ndim)}i", self._read(4 * max(3, ndim), "header"))
        shape = tuple(int(d) for d in dims[:ndim])
        if any(d <= 0 for d in shape):
            raise _bad(self.path, f"dimensions {shape}")
        return shape

    def _read(self, n: int, what: str) -> bytes:
        try:
            data = self._fh.read(n)
        except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise _bad(self.path, f"{what}: {exc}") from None
        if len(data) != n:
            raise _bad(self.path, f"truncated in its {what}")
        return data

    def rows(self, count: int) -> np.ndarray:
        """The next ``count`` rows (each the shape's trailing dimensions)."""
        row = math.prod(self.shape[1:]) * self.itemsize
        buf = self._read(count * row, "data")
        return np.frombuffer(buf, dtype=self.dtype).reshape(count, *self.shape[1:])

    def close(self) -> None:
        self._fh.close()


def _labels(files: dict[str, Path], prefix: str) -> np.ndarray:
    """(N, 5) raw labels of one half: category, instance, elevation, azimuth, lighting."""
    cat = MatrixReader(files[f"{prefix}-cat"], INT_MAGIC)
    try:
        info = MatrixReader(files[f"{prefix}-info"], INT_MAGIC)
    except BaseException:
        cat.close()
        raise
    try:
        n = cat.shape[0]
        if len(cat.shape) != 1:
            raise _bad(cat.path, f"shape {cat.shape}, expected (N,)")
        if info.shape != (n, 4):
            raise _bad(info.path, f"shape {info.shape}, expected ({n}, 4)")
        labels = np.column_stack([cat.rows(n), info.rows(n)]).astype(np.int64)
    finally:
        cat.close()
        info.close()
    return labels


def _classes(labels: np.ndarray, sizes: tuple[int, ...], path: Path) -> np.ndarray:
    """Raw labels -> factor classes (azimuth 0, 2, .. 34 -> 0..17), checked against the grid."""
    classes = labels.copy()
    if (classes[:, 3] % 2).any():
        raise _bad(path, "an odd azimuth (they are 0, 2, .., 34)")
    classes[:, 3] //= 2
    low, high = classes.min(axis=0), classes.max(axis=0)
    if (low < 0).any() or (high >= np.array(sizes)).any():
        raise _bad(path, f"factor classes outside the grid {sizes}")
    return classes


def _resize(pairs: np.ndarray, side: int) -> np.ndarray:
    """First camera of (M, 2, 96, 96) stereo pairs -> (M, 1, side, side), Lanczos as dislib."""
    from PIL import Image

    out = np.empty((len(pairs), 1, side, side), dtype=np.uint8)
    for i, pair in enumerate(pairs):
        img = Image.fromarray(np.ascontiguousarray(pair[0]))
        out[i, 0] = np.asarray(img.resize((side, side), Image.Resampling.LANCZOS))
    return out


def _half_images(files: dict[str, Path], prefix: str, n: int, side: int
                 ) -> Iterator[np.ndarray]:
    dat = MatrixReader(files[f"{prefix}-dat"], UBYTE_MAGIC)
    try:
        if dat.shape != (n, 2, _SIDE, _SIDE):
            raise _bad(dat.path, f"shape {dat.shape}, expected ({n}, 2, 96, 96)")
        for start in range(0, n, _CHUNK):
            yield _resize(dat.rows(min(_CHUNK, n - start)), side)
    finally:
        dat.close()


def prepare_smallnorb(spec: DatasetSpec, root: Path, files: dict[str, Path],
                      progress: Progress | None, force: bool) -> None:
    sizes = tuple(int(s) for s in spec.factor_sizes)
    n = math.prod(sizes)
    side = int(spec.image_size)  # 64, or 32 for --image-size 32
    halves = []
    for prefix in SMALLNORB_HALVES:  # the small files first: a bad label fails in a second
        labels = _labels(files, prefix)
        halves.append((prefix, _classes(labels, sizes, files[f"{prefix}-info"])))
    got = sum(len(c) for _p, c in halves)
    if got != n:
        raise _bad(files[f"{SMALLNORB_HALVES[0]}-cat"],
                   f"{got} images in both halves, the grid {sizes} has {n}")
    grid_cache.check_disk(root, grid_cache.cache_bytes(n, side * side, len(sizes)), spec.name)
    values = [np.arange(sizes[0]), np.arange(sizes[1]), 30.0 + 5.0 * np.arange(sizes[2]),
              20.0 * np.arange(sizes[3]), np.arange(sizes[4])]
    with cache.building(root, spec.cache_name, force) as tmp:
        writer = grid_cache.GridWriter(tmp / cache.IMAGES, n, (1, side, side))
        try:
            done = 0
            for prefix, classes in halves:
                where = grid_cache.grid_index(classes, sizes)
                at = 0  # images of this half written so far
                for block in _half_images(files, prefix, len(classes), side):
                    try:
                        writer.put(where[at : at + len(block)], block)
                    except DataError as exc:
                        raise _bad(files[f"{prefix}-info"], str(exc)) from None
                    at += len(block)
                    done += len(block)
                    if progress:
                        progress("import", done, n)
            sha1 = writer.close()
        except BaseException:
            writer.abort()
            raise
        grid_cache.save_grid_tables(tmp, sizes, values)
        cache.write_meta(tmp, {
            "name": spec.name, "title": spec.title, "source": "files",
            "origin": str(files[f"{SMALLNORB_HALVES[0]}-dat"].parent),
            "count": n, "channels": 1, "binary": False, "packed": False,
            "checksum": {"images_sha1": sha1},
            "factor_names": list(spec.factor_names), "factor_sizes": list(sizes),
            "factor_values": [np.asarray(v, dtype=np.float64).tolist() for v in values],
            "nuisance_factors": list(SMALLNORB_NUISANCE),
            "resize": f"first camera, 96x96 -> {side}x{side}, Pillow Lanczos",
        })

