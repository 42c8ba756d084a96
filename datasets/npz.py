"""The original dSprites npz: read it chunk-wise (import) and write it chunk-wise (export).

The file holds 737,280 x 64 x 64 uint8 images (3 GB unpacked) inside a zip; both directions
stream the ``imgs.npy`` member so memory stays small.
"""

from __future__ import annotations

import contextlib
import math
import os
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from bvae_tui.datasets import dsprites
from bvae_tui.datasets.errors import DataError

KEYS = ("imgs", "latents_values", "latents_classes")


class DspritesNpzReader:
    """Validating, streaming reader of a dSprites-format npz."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._zf: zipfile.ZipFile | None = None

    def _bad(self, why: str) -> DataError:
        return DataError(f"{self.path} is not a usable dSprites npz ({why}); delete it and run "
                         "`bvae data download dsprites`, or remove it to use the procedural set")

    def __enter__(self) -> DspritesNpzReader:
        try:
            self._zf = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise self._bad(f"not a valid zip: {exc}") from None
        names = {n.removesuffix(".npy") for n in self._zf.namelist() if n.endswith(".npy")}
        missing = [k for k in KEYS if k not in names]
        if missing:
            raise self._bad(f"missing key(s) {', '.join(missing)}")
        shape, dtype, offset = self._member_header("imgs")
        if dtype != np.uint8 or len(shape) != 3 or shape[1:] != (64, 64):
            raise self._bad(f"imgs is {dtype} {shape}, expected uint8 (N, 64, 64)")
        self._check_size("imgs", shape, dtype, offset)
        self.n = int(shape[0])
        return self

    def __exit__(self, *exc) -> None:
        if self._zf is not None:
            self._zf.close()

    def _open(self, key: str):
        assert self._zf is not None
        try:
            return self._zf.open(f"{key}.npy")
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
            # a damaged local header, an unsupported compression, an encrypted member
            raise self._bad(f"{key}: {exc}") from None

    def _header(self, fh, key: str) -> tuple[tuple[int, ...], np.dtype]:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise self._bad(f"{key}: {exc}") from None
        if fortran:
            raise self._bad(f"{key} is stored in Fortran order")
        return tuple(int(s) for s in shape), np.dtype(dtype)

    def _member_header(self, key: str) -> tuple[tuple[int, ...], np.dtype, int]:
        """(shape, dtype, data offset) of member ``key``, from its header alone."""
        with self._open(key) as fh:
            shape, dtype = self._header(fh, key)
            return shape, dtype, fh.tell()

    def _check_size(self, key: str, shape: tuple[int, ...], dtype: np.dtype, offset: int) -> None:
        """The member must hold the bytes its header promises. A header costs nothing to craft:
        what it claims is never allocated or read before its shape and this size pass."""
        assert self._zf is not None
        if self._zf.getinfo(f"{key}.npy").file_size < offset + math.prod(shape) * dtype.itemsize:
            raise self._bad(f"{key} is truncated: its header says {dtype} {shape}")

    def _load_small(self, key: str, shape: tuple[int, ...], kinds: str) -> np.ndarray:
        """Load ``key`` once its header says ``shape`` and a dtype of one of ``kinds``."""
        got, dtype, offset = self._member_header(key)
        if got != shape or dtype.kind not in kinds or dtype.hasobject:
            raise self._bad(f"{key} is {dtype} {got}, expected {shape}")
        self._check_size(key, got, dtype, offset)
        try:
            with self._open(key) as fh:
                return np.lib.format.read_array(fh, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise self._bad(f"{key}: {exc}") from None

    def check_factors(self, grid: dsprites.Grid) -> None:
        """The factor tables must be the grid, in its order (else indices would mean nothing)."""
        if self.n != grid.n:
            raise self._bad(f"{self.n} images, expected {grid.n}")
        f = len(grid.sizes)
        classes = self._load_small("latents_classes", (grid.n, f), "iu")
        values = self._load_small("latents_values", (grid.n, f), "fiu")
        if not np.array_equal(classes, grid.classes()):
            raise self._bad("latents_classes are not the dSprites grid in its order")
        if not np.allclose(values, grid.latent_values(), atol=1e-6):
            raise self._bad("latents_values do not match the dSprites factor values")

    def iter_images(self, chunk: int = 8192) -> Iterator[np.ndarray]:
        """Yield (c, 64, 64) uint8 chunks of ``imgs``, checking they are binary."""
        row = 64 * 64
        with self._open("imgs") as fh:
            self._header(fh, "imgs")
            done = 0
            while done < self.n:
                take = min(chunk, self.n - done)
                try:
                    buf = fh.read(take * row)
                except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                    raise self._bad(f"imgs: {exc}") from None
                if len(buf) != take * row:
                    raise self._bad("imgs is truncated")
                arr = np.frombuffer(buf, dtype=np.uint8).reshape(take, 64, 64)
                if arr.max(initial=0) > 1:
                    raise self._bad("imgs has values other than 0 and 1")
                yield arr
                done += take


def _npy_header(shape: tuple[int, ...], dtype) -> dict:
    return {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
            "shape": tuple(int(s) for s in shape)}


def export_npz(dataset, out: Path, compress: bool = True,
               progress: Callable[[str, int, int | None], None] | None = None,
               chunk: int = 8192) -> Path:
    """Write ``dataset`` (a dSprites-grid :class:`~datasets.loader.Dataset`) in the original
    file's format: imgs uint8 (N, 64, 64), latents_values float64, latents_classes int64 and
    metadata (0-d object array holding a dict), same factor grid and index order.

    Written to a temp name in the target folder and renamed when complete.
    """
    if not dataset.factor_sizes or not dataset.binary or dataset.channels != 1:
        raise DataError(f"only dSprites-grid datasets export to the dSprites npz format, not "
                        f"'{dataset.name}'")
    out = Path(out).expanduser().resolve()
    if out.is_dir():
        raise DataError(f"{out} is a folder; give a file name such as {out / 'dsprites.npz'}")
    if not out.parent.is_dir():
        # A path component may be a file: find the first one that is not a folder.
        bad = out.parent
        while not bad.parent.is_dir() and bad.parent != bad:
            bad = bad.parent
        if bad.exists():
            raise DataError(f"{bad} is not a folder (it is a file); pick another path")
        raise DataError(f"folder {out.parent} does not exist; create it or pick another path")
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    grid = dsprites.Grid(
        tuple(np.asarray(v, dtype=np.float64) for v in dataset.meta["factor_values"]),
        tuple(np.asarray(c) for c in dataset.meta["full_grid_classes"]),
    )
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    try:
        # Level 6 is zlib's default, what np.savez_compressed (and so the original) uses.
        with zipfile.ZipFile(tmp, "w", compression=method, compresslevel=6 if compress else None,
                             allowZip64=True) as zf:
            with zf.open("imgs.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array_header_1_0(
                    fh, _npy_header((dataset.n, 64, 64), np.uint8))
                for start in range(0, dataset.n, chunk):
                    rows = dataset.read_rows(start, start + chunk)
                    fh.write(np.ascontiguousarray(dataset.unpack_rows(rows)[:, 0]).data)
                    if progress:
                        progress("export", start + len(rows), dataset.n)
            for key, arr in (("latents_values", np.asarray(dataset.values, dtype=np.float64)),
                             ("latents_classes", np.asarray(dataset.classes, dtype=np.int64))):
                with zf.open(f"{key}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.ascontiguousarray(arr))
            meta = np.empty((), dtype=object)
            meta[()] = dsprites.metadata(grid)
            with zf.open("metadata.npy", "w") as fh:
                np.lib.format.write_array(fh, meta, allow_pickle=True)
        os.replace(tmp, out)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise DataError(f"cannot write {out} ({exc.strerror or exc}); pick a writable path") \
            from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return out
