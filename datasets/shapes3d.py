"""DeepMind's 3dshapes (``3dshapes.h5``): 480,000 RGB images on a full grid of 6 factors.

The file holds ``images`` (N, 64, 64, 3) uint8 and ``labels`` (N, 6) float64 factor values, in
grid order with the last factor (orientation) fastest. We store channels-first (N, 3, 64, 64),
derive the class of each value per factor, and check the rows really are that grid in that
order, so ``index_of`` / ``images_for`` are right. Read chunk-wise: 5.9 GB never sits in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from bvae_tui.datasets import cache
from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.registry import SHAPES3D_FILE, DatasetSpec

Progress = Callable[[str, int, "int | None"], None]
_CHUNK = 8000


def find_source(root: Path) -> Path | None:
    path = root / SHAPES3D_FILE
    return path if path.is_file() else None


def _bad(path: Path, why: str) -> DataError:
    return DataError(f"{path} is not a usable 3dshapes file ({why}); delete it and run "
                     "`bvae data download shapes3d`")


def prepare_shapes3d(spec: DatasetSpec, root: Path, path: Path, progress: Progress | None,
                     force: bool) -> None:
    # h5py here, not at the top: `bvae data list` and the TUI import this module (find_source)
    # through the loader, and h5py takes half a second to import.
    try:
        import h5py
    except ImportError:
        raise DataError("reading 3dshapes needs h5py; install it: pip install h5py") from None
    sizes = tuple(spec.factor_sizes)
    try:
        fh = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise _bad(path, f"not HDF5: {str(exc).splitlines()[0]}") from None
    with fh:
        if "images" not in fh or "labels" not in fh:
            raise _bad(path, "missing 'images' or 'labels'")
        images, labels = fh["images"], fh["labels"]
        n = int(np.prod(sizes))
        if images.dtype != np.uint8 or images.shape != (n, 64, 64, 3):
            raise _bad(path, f"images is {images.dtype} {images.shape}, expected uint8 "
                       f"({n}, 64, 64, 3)")
        if labels.shape != (n, len(sizes)):
            raise _bad(path, f"labels has shape {labels.shape}, expected ({n}, {len(sizes)})")
        try:
            values = np.asarray(labels[:], dtype=np.float64)
        except (OSError, ValueError) as exc:
            raise _bad(path, f"labels: {exc}") from None
        classes, grid_values = _classes(values, sizes, path)
        with cache.building(root, spec.cache_name, force) as tmp:
            writer = cache.NpyWriter(tmp / cache.IMAGES, (3, 64, 64))
            try:
                for start in range(0, n, _CHUNK):
                    try:
                        block = images[start : start + _CHUNK]
                    except (OSError, ValueError) as exc:
                        raise _bad(path, f"images: {str(exc).splitlines()[0]}") from None
                    writer.append(block.transpose(0, 3, 1, 2))
                    if progress:
                        progress("import", writer.rows, n)
            except BaseException:
                writer.abort()
                raise
            writer.close()
            cache.save_array(tmp / cache.CLASSES, classes)
            cache.save_array(tmp / cache.VALUES, values)
            cache.write_meta(tmp, {
                "name": spec.name, "title": spec.title, "source": "files", "origin": str(path),
                "count": writer.rows, "channels": 3, "binary": False, "packed": False,
                "checksum": {"images_sha1": writer.sha1.hexdigest()},
                "factor_names": list(spec.factor_names), "factor_sizes": list(sizes),
                "factor_values": [v.tolist() for v in grid_values],
            })


def _classes(values: np.ndarray, sizes: tuple[int, ...], path: Path
             ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Class index of each factor value; checks the rows are the full grid in C order."""
    cols, grid_values = [], []
    for f, size in enumerate(sizes):
        # Values are float32-ish in the file: round before comparing to merge equal values.
        col = np.round(values[:, f], 6)
        uniq = np.unique(col)
        if len(uniq) != size:
            raise _bad(path, f"factor {f} has {len(uniq)} values, expected {size}")
        cols.append(np.searchsorted(uniq, col))
        grid_values.append(uniq)
    classes = np.stack(cols, axis=1).astype(np.int64)
    strides = np.concatenate([np.cumprod(np.array(sizes[::-1]))[::-1][1:], [1]])
    if not np.array_equal(classes @ strides, np.arange(len(classes))):
        raise _bad(path, "rows are not the factor grid in order")
    return classes, grid_values
