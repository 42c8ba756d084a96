"""Open a prepared dataset (memory-mapped) and the :class:`Dataset` API the engine uses."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bvae_tui.datasets import cache, folder_factors, images, shapes3d
from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.image_size import size_flag, sized
from bvae_tui.datasets.registry import (
    DatasetSpec,
    data_root,
    factors_fix,
    find_real_dsprites,
    get_spec,
)

IMAGE_SIZE = 64


class Dataset:
    """A prepared dataset: uint8 images (memory-mapped) plus factor classes/values where known."""

    def __init__(self, spec: DatasetSpec, cache_dir: Path, meta: dict):
        self.spec = spec
        self.name = spec.name
        self.cache_dir = cache_dir
        self.meta = meta
        self.source: str = meta.get("source", "files")
        self.channels: int = int(meta.get("channels", spec.channels))
        self.binary: bool = bool(meta.get("binary", spec.binary))
        self.packed: bool = bool(meta.get("packed", False))
        # The side of the square images (--image-size); bit-packed data is always 64.
        self.image_size: int = spec.image_size
        self.images: np.ndarray = _load(cache_dir / cache.IMAGES, spec.name)
        self.n: int = int(self.images.shape[0])
        side = self.image_size
        expected = (self.n, IMAGE_SIZE * IMAGE_SIZE // 8) if self.packed else (
            self.n, self.channels, side, side)
        if self.images.dtype != np.uint8 or self.images.shape != expected \
                or self.n != int(meta.get("count", -1)):
            raise _damaged(spec.name, cache_dir, "images.npy has the wrong shape", spec)
        # The 32x32 sprite crops (datasets.crops) when prepare stored them; caches made before
        # crops existed, or whose sprites did not all fit, have none and train from ``images``.
        self.crops: np.ndarray | None = None
        self.crop_origin: np.ndarray | None = None
        crop_meta = meta.get("crops")
        if self.packed and isinstance(crop_meta, dict) and crop_meta.get("stored"):
            self.crops = _load(cache_dir / cache.CROPS, spec.name)
            self.crop_origin = _load(cache_dir / cache.CROP_ORIGIN, spec.name)
            if self.crops.dtype != np.uint8 or self.crops.shape != (self.n, 128) \
                    or self.crop_origin.dtype != np.uint8 or self.crop_origin.shape != (self.n, 2):
                raise _damaged(spec.name, cache_dir, "crop files have the wrong shape")
        self.factor_names: tuple[str, ...] = tuple(meta.get("factor_names") or ())
        # Factors of the grid the metrics draw at random instead of scoring (SmallNORB's instance)
        self.nuisance_factors: tuple[str, ...] = tuple(meta.get("nuisance_factors") or ())
        self.factor_sizes: tuple[int, ...] = tuple(int(s) for s in meta.get("factor_sizes") or ())
        self.classes: np.ndarray | None = None
        self.values: np.ndarray | None = None
        # A folder's factors.csv keeps its rows in file order, its grid maybe incomplete
        # (datasets.folder_factors); the other datasets are full grids in grid order.
        self.grid_rows: bool = meta.get("row_order", "grid") == "grid"
        self.complete_grid: bool = bool((meta.get("grid") or {}).get("complete", True))
        self._lookup: folder_factors.ClassIndex | None = None
        if self.factor_sizes:
            f = len(self.factor_sizes)
            self.classes = _load(cache_dir / cache.CLASSES, spec.name)
            self.values = _load(cache_dir / cache.VALUES, spec.name)
            if self.classes.shape != (self.n, f) or self.values.shape != (self.n, f) \
                    or (self.grid_rows and int(np.prod(self.factor_sizes)) != self.n):
                raise _damaged(spec.name, cache_dir, "factor tables have the wrong shape")
            if not self.grid_rows:
                self._lookup = folder_factors.ClassIndex(np.asarray(self.classes),
                                                         self.factor_sizes)
        # Strides of a full factorial grid stored with the last factor fastest.
        sizes = np.array(self.factor_sizes or (0,), dtype=np.int64)
        self._strides = np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, n={self.n}, source={self.source!r})"

    # images -------------------------------------------------------------------------------------
    def images_at(self, idx) -> np.ndarray:
        """uint8 (M, C, S, S) images at ``idx`` (S: :attr:`image_size`): 0/1 for binary data,
        0..255 otherwise."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            raise IndexError(f"image index out of range 0..{self.n - 1}")
        return self.unpack_rows(np.asarray(self.images[idx]))

    def read_rows(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Stored rows ``start:stop`` (packed or not) read with plain file reads.

        For whole-dataset passes (device tensor, export): reading through the memory map would
        leave every touched page counted in this process's resident memory. ``out`` (uint8,
        C-contiguous, the rows' shape) is filled in place, e.g. a slice of a CPU tensor, so no
        temporary chunk adds to the peak.
        """
        return self._read(self.images, cache.IMAGES, start, stop, out)

    def read_crop_rows(self, start: int, stop: int,
                       out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``start:stop`` of ``crops`` (N, 128), read like :meth:`read_rows`."""
        if self.crops is None:
            raise ValueError(f"dataset '{self.name}' has no stored crops")
        return self._read(self.crops, cache.CROPS, start, stop, out)

    def _read(self, arr: np.ndarray, fname: str, start: int, stop: int,
              out: np.ndarray | None) -> np.ndarray:
        stop = min(stop, self.n)
        if out is None:
            out = np.empty((max(0, stop - start), *arr.shape[1:]), dtype=np.uint8)
        filename = getattr(arr, "filename", None)
        if filename is None or out.size == 0:
            out[...] = arr[start:stop]
            return out
        with open(filename, "rb") as fh:
            fh.seek(int(arr.offset) + start * out[0].nbytes)
            if fh.readinto(memoryview(out).cast("B")) != out.nbytes:
                raise _damaged(self.name, self.cache_dir, f"{fname} is truncated")
        return out

    def unpack_rows(self, rows: np.ndarray) -> np.ndarray:
        """Stored rows -> uint8 (M, C, 64, 64)."""
        if self.packed:
            return np.unpackbits(rows, axis=1).reshape(len(rows), 1, IMAGE_SIZE, IMAGE_SIZE)
        return rows

    def float_images_at(self, idx) -> np.ndarray:
        """float32 (M, C, 64, 64) images in [0, 1]."""
        imgs = self.images_at(idx).astype(np.float32)
        if not self.binary:
            imgs /= 255.0
        return imgs

    # factors ------------------------------------------------------------------------------------
    def _need_factors(self) -> None:
        if not self.factor_sizes:
            raise DataError(f"dataset '{self.name}' has no ground-truth factors; "
                            f"{factors_fix(self.name)}")

    def index_of(self, classes) -> np.ndarray:
        """Row index of each factor-class vector (M, F) -> (M,) int64."""
        self._need_factors()
        classes = np.asarray(classes, dtype=np.int64)
        if classes.ndim == 1:
            classes = classes[None, :]
        if classes.shape[1] != len(self.factor_sizes):
            raise ValueError(f"classes need {len(self.factor_sizes)} columns")
        if (classes < 0).any() or (classes >= np.array(self.factor_sizes)).any():
            raise IndexError("factor class out of range")
        if self._lookup is not None:
            return self._lookup.index_of(classes)
        return classes @ self._strides

    def closest_index(self, classes, keep) -> int:
        """The image with ``classes`` at the factor positions ``keep`` and, for the others, the
        given classes where such an image exists (on an incomplete grid: the one agreeing on
        most of them). A DataError when no image has the kept classes."""
        self._need_factors()
        if self._lookup is None or self.complete_grid:
            return int(self.index_of(np.asarray(classes, dtype=np.int64))[0])
        return self._lookup.nearest(classes, list(keep))

    def sample_factors(self, n: int, rng: np.random.RandomState) -> np.ndarray:
        """(n, F) int64: a uniformly drawn class for each factor."""
        self._need_factors()
        cols = [rng.randint(size, size=n) for size in self.factor_sizes]
        return np.stack(cols, axis=1).astype(np.int64)

    def images_for(self, classes) -> np.ndarray:
        """uint8 (M, C, 64, 64) images of the given factor classes."""
        return self.images_at(self.index_of(classes))


def _damaged(name: str, cache_dir: Path, why: str, spec: DatasetSpec | None = None) -> DataError:
    flag = size_flag(spec) if spec is not None else ""
    return DataError(f"prepared data for '{name}' in {cache_dir} is damaged ({why}); "
                     f"run: bvae data prepare {name}{flag} --force")


def _load(path: Path, name: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise _damaged(name, path.parent, f"{path.name} is missing") from None
    except (ValueError, OSError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _damaged(name, path.parent, f"{path.name}: {reason}") from None


def cache_dir_of(spec: DatasetSpec, data_dir=None) -> Path:
    return data_root(data_dir) / spec.cache_name


def folder_changed(spec: DatasetSpec, meta: dict) -> bool:
    """Whether the image files of a ``folder:PATH`` dataset differ from those it was prepared
    from (one directory walk, no decoding). Caches without a fingerprint count as changed."""
    if spec.folder is None:
        return False
    fp = images.folder_fingerprint(spec.folder)
    return fp is None or fp != meta.get("fingerprint")


def folder_missing_error(spec: DatasetSpec) -> DataError | None:
    if spec.folder is None or spec.folder.is_dir():
        return None
    what = "is not a folder" if spec.folder.exists() else "does not exist"
    return DataError(f"{spec.folder} {what}; give a folder of jpg/png images")


def folder_changed_error(spec: DatasetSpec) -> DataError:
    return DataError(f"folder {spec.folder} changed since it was prepared; run: "
                     f"bvae data prepare {spec.name}{size_flag(spec)} --force")


def _npy_info(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset from a .npy header (reads the header only)."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        return tuple(int(s) for s in shape), np.dtype(dtype), fh.tell()


def cache_error(spec: DatasetSpec, cache_dir: Path, meta: dict) -> DataError | None:
    """The error opening this cache would raise (old format, missing, truncated or misshapen
    files), found cheaply from file sizes and .npy headers; None when it looks sound."""
    if int(meta.get("format_version", 0)) != cache.FORMAT_VERSION:
        return DataError(f"prepared data for '{spec.name}' has an old format; run: "
                         f"bvae data prepare {spec.name} --force")
    try:
        n = int(meta["count"])
        channels = int(meta.get("channels", spec.channels))
        packed = bool(meta.get("packed", False))
        factor_sizes = [int(s) for s in meta.get("factor_sizes") or ()]
    except (KeyError, TypeError, ValueError):
        return _damaged(spec.name, cache_dir, "meta.json is incomplete")
    side = spec.image_size
    want: list[tuple[str, tuple[int, ...], np.dtype | None]] = [
        (cache.IMAGES, (n, IMAGE_SIZE * IMAGE_SIZE // 8) if packed
         else (n, channels, side, side), np.dtype(np.uint8))]
    crop_meta = meta.get("crops")
    if packed and isinstance(crop_meta, dict) and crop_meta.get("stored"):
        want += [(cache.CROPS, (n, 128), np.dtype(np.uint8)),
                 (cache.CROP_ORIGIN, (n, 2), np.dtype(np.uint8))]
    if factor_sizes:
        if meta.get("row_order", "grid") == "grid" and int(np.prod(factor_sizes)) != n:
            return _damaged(spec.name, cache_dir, "factor sizes do not match the count")
        want += [(cache.CLASSES, (n, len(factor_sizes)), None),
                 (cache.VALUES, (n, len(factor_sizes)), None)]
    for fname, shape, dtype in want:
        path = cache_dir / fname
        try:
            got, got_dtype, offset = _npy_info(path)
            size = path.stat().st_size
        except FileNotFoundError:
            return _damaged(spec.name, cache_dir, f"{fname} is missing")
        except (ValueError, OSError, EOFError, SyntaxError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return _damaged(spec.name, cache_dir, f"{fname}: {reason}")
        if got != shape or (dtype is not None and got_dtype != dtype):
            return _damaged(spec.name, cache_dir, f"{fname} has the wrong shape", spec)
        if size < offset + int(np.prod(got)) * got_dtype.itemsize:
            return _damaged(spec.name, cache_dir, f"{fname} is truncated")
    return None


def open_cached(spec: DatasetSpec, cdir: Path, meta: dict) -> Dataset:
    if int(meta.get("format_version", 0)) != cache.FORMAT_VERSION:
        raise DataError(f"prepared data for '{spec.name}' has an old format; run: "
                        f"bvae data prepare {spec.name} --force")
    if spec.extra.get("variant"):  # a dSprites variant: its base's cache, coloured per batch
        from bvae_tui.datasets.dsprites_variants import VariantDataset

        return VariantDataset(Dataset(spec, cdir, meta), spec, cdir.parent)
    return Dataset(spec, cdir, meta)


def open_prepared(name: str, data_dir: str | os.PathLike | None = None,
                  image_size: int = IMAGE_SIZE) -> Dataset:
    """Open the prepared cache as it is (no preparing, no source checks): for ``prepare``."""
    spec = sized(get_spec(name), image_size)
    cdir = cache_dir_of(spec, data_dir)
    meta = cache.read_meta(cdir)
    if meta is None:
        raise DataError(f"dataset '{spec.name}' is not prepared in {cdir.parent}; run: "
                        f"bvae data prepare {name}{size_flag(spec)}")
    return open_cached(spec, cdir, meta)


def data_root_error(root: Path) -> DataError | None:
    """The error for a data root that is (or lies under) a file, else None."""
    p = root
    while not p.exists() and p.parent != p:
        p = p.parent
    if p.exists() and not p.is_dir():
        what = "is not a folder" if p == root else f"is under {p}, which is not a folder"
        return DataError(f"data dir {root} {what}; pass --data-dir or set BVAE_DATA_DIR to a "
                         "folder")
    return None


def check_available(name: str, data_dir: str | os.PathLike | None = None,
                    image_size: int = IMAGE_SIZE) -> int | None:
    """Raise the one-line :class:`DataError` opening ``name`` for training would hit, without
    preparing anything (cheap: meta.json, .npy headers, one walk of a folder dataset).

    Returns the number of images training will see when a sound, current cache holds them, or
    None when the dataset will be (re)built first (its size is not known yet). dsprites and
    dsprites-mini are always available (generated offline when not prepared). ``image_size``:
    the side training asks for; a size the dataset does not allow is the error.
    """
    spec = sized(get_spec(name), image_size)
    if spec.extra.get("variant"):  # a dSprites variant: its base, then (scream) its image
        from bvae_tui.datasets import dsprites_variants

        count = check_available(spec.extra["base"], data_dir)
        dsprites_variants.check_source(spec, data_root(data_dir))
        return count
    root = data_root(data_dir)
    err = data_root_error(root) or folder_missing_error(spec)
    if err is not None:
        raise err
    cdir = root / spec.cache_name
    meta = cache.read_meta(cdir)
    if meta is not None:
        if spec.folder is not None:
            if not folder_changed(spec, meta):
                err = cache_error(spec, cdir, meta)
                if err is not None:
                    raise err
                return int(meta["count"])
            meta = None  # changed: it is rebuilt from the folder, checked below
        else:
            if spec.name == "dsprites" and meta.get("source") == "procedural" \
                    and find_real_dsprites(root) is not None:
                return None  # the real file replaces the procedural set
            err = cache_error(spec, cdir, meta)
            if err is not None:
                raise err
            return int(meta["count"])
    # Not prepared (or a changed folder): preparing it needs its source.
    if spec.name in ("dsprites", "dsprites-mini"):
        return None
    if spec.folder is not None:
        fp = images.folder_fingerprint(spec.folder)
        if fp is not None and fp["count"] == 0:
            raise DataError(f"no jpg/png images under {spec.folder}; point it at a folder of "
                            "images")
        if folder_factors.has_factors_file(spec.folder):  # a bad factors.csv: one line now
            folder_factors.read_table(spec.folder, images.folder_images(spec.folder))
        return None  # how many decode is known only after preparing
    if spec.name == "shapes3d":
        present = shapes3d.find_source(root) is not None
    else:
        from bvae_tui.datasets import realsets  # SmallNORB, Cars3D, MPI3D

        present = (realsets.find_source(spec, root) if spec.name in realsets.NAMES
                   else images.find_source(spec, root)) is not None
    if not present:
        raise DataError(f"{spec.name} is not prepared and its files are not in {root}: "
                        f"{spec.source_hint} {root}, or run: bvae data download {spec.name}")
    return None


def dataset_status(name: str, data_dir: str | os.PathLike | None = None,
                   image_size: int = IMAGE_SIZE) -> dict:
    """What ``bvae data list`` shows for one dataset (cheap: meta.json and .npy headers; one
    directory walk for a ``folder:PATH`` dataset).

    A damaged cache shows as not prepared, source ``"damaged"``, with ``problem`` (the error
    opening it would raise) and ``fix`` (the command that repairs it). ``stale``: a folder
    dataset whose files changed since it was prepared (``fix`` rebuilds it; when the folder is
    gone, ``problem`` says so and there is no ``fix``).
    """
    spec = sized(get_spec(name), image_size)
    if spec.extra.get("variant"):  # a dSprites variant shows its base's cache
        from bvae_tui.datasets import dsprites_variants

        return dsprites_variants.status(spec, dataset_status(spec.extra["base"], data_dir),
                                        data_root(data_dir))
    cdir = cache_dir_of(spec, data_dir)
    meta = cache.read_meta(cdir)
    damaged = cache_error(spec, cdir, meta) if meta is not None else None
    stale = meta is not None and damaged is None and folder_changed(spec, meta)
    ok = meta is not None and damaged is None
    problem, fix = damaged, None
    if damaged is not None:
        fix = f"bvae data prepare {spec.name}{size_flag(spec)} --force"
    elif stale:
        problem = folder_missing_error(spec)  # the cache is sound but its folder is gone
        fix = None if problem is not None else f"bvae data prepare {spec.name}{size_flag(spec)}"
    return {
        "name": spec.name,
        "title": spec.title,
        "image_size": spec.image_size,
        "prepared": ok,
        "source": ("damaged" if damaged is not None else meta.get("source")) if meta else None,
        "size_bytes": cache.dir_size(cdir) if meta else 0,
        "location": str(cdir),
        "count": int(meta["count"]) if ok and "count" in meta else None,
        "stale": stale,
        "problem": str(problem) if problem is not None else None,
        "fix": fix,
    }
