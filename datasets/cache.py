"""The prepared-dataset cache: one directory per dataset under the data root.

Layout of ``<root>/<cache_name>/``::

    images.npy    uint8, (N, 512) bit-packed for binary data, else (N, C, 64, 64); memory-mapped
    classes.npy   int64 (N, F) factor classes (datasets with ground-truth factors only)
    values.npy    float64 (N, F) factor values (idem)
    crops.npy        uint8 (N, 128) bit-packed 32x32 crop around each sprite (dSprites grids, when
    crop_origin.npy  uint8 (N, 2) the crop's top-left (row, col); every sprite fits: datasets.crops)
    meta.json     source, counts, checksum, format version, ``crops`` (stored or why not), ...

A cache is built in a hidden temp directory next to its final place and renamed into place only
when every file is complete, so a crash or Ctrl-C never leaves a half-written cache that looks
prepared; stale temp directories are removed by the next prepare.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bvae_tui.datasets.errors import DataError

FORMAT_VERSION = 1
META = "meta.json"
IMAGES = "images.npy"
CLASSES = "classes.npy"
VALUES = "values.npy"
CROPS = "crops.npy"
CROP_ORIGIN = "crop_origin.npy"
_HEADER_LEN = 128  # fixed .npy header size, so the shape can be rewritten in place at the end


def ensure_root(root: Path) -> Path:
    """Create the data root, or fail with a one-line error that says how to fix it."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create data dir {root} ({exc.strerror}); pass --data-dir or set "
            "BVAE_DATA_DIR to a writable folder"
        ) from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise DataError(
            f"data dir {root} is not writable; pass --data-dir or set BVAE_DATA_DIR to a "
            "writable folder"
        )
    return root


def dir_size(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        with contextlib.suppress(OSError):
            if p.is_file():
                total += p.stat().st_size
    return total


def read_meta(cache_dir: Path) -> dict | None:
    """meta.json of a prepared cache, or None when it is not (completely) prepared."""
    path = cache_dir / META
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """A version 1.0 .npy header padded to a fixed length (numpy accepts any padding)."""
    d = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
         "shape": tuple(int(s) for s in shape)}
    text = repr(d).encode("latin1")
    pad = _HEADER_LEN - 10 - len(text) - 1
    if pad < 0:
        raise ValueError("npy header too long")
    body = text + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


class NpyWriter:
    """Appends rows to a .npy file whose row count may only be known at the end.

    Also hashes the data bytes (sha1), so the cache's checksum costs no second pass.
    """

    def __init__(self, path: Path, row_shape: tuple[int, ...], dtype=np.uint8):
        self.path = path
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self.sha1 = hashlib.sha1()
        self._fh = open(path, "wb")  # noqa: SIM115 (closed in close())
        self._fh.write(_npy_header((0, *self.row_shape), self.dtype))

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {rows.shape[1:]}, expected {self.row_shape}")
        data = rows.data.cast("B")
        self._fh.write(data)
        self.sha1.update(data)
        self.rows += len(rows)

    def close(self) -> None:
        self._fh.flush()
        self._fh.seek(0)
        self._fh.write(_npy_header((self.rows, *self.row_shape), self.dtype))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._fh.close()


def save_array(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, arr)
        fh.flush()
        os.fsync(fh.fileno())


def clean_stale(root: Path, cache_name: str) -> None:
    """Remove temp directories a crashed prepare left behind (older than a minute, so a prepare
    running in another process right now keeps its own)."""
    now = time.time()
    for p in root.glob(f".{cache_name}.tmp-*"):
        with contextlib.suppress(OSError):
            if now - p.stat().st_mtime > 60:
                shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def building(root: Path, cache_name: str, force: bool = False) -> Iterator[Path]:
    """Yield a temp directory to build a cache in; on success it becomes ``root/cache_name``.

    On any error (or Ctrl-C) the temp directory is removed and an existing cache is untouched.
    """
    ensure_root(root)
    clean_stale(root, cache_name)
    final = root / cache_name
    tmp = root / f".{cache_name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
    except OSError as exc:
        raise DataError(f"cannot write in data dir {root} ({exc.strerror}); pass --data-dir "
                        "or set BVAE_DATA_DIR to a writable folder") from None
    try:
        yield tmp
        if not (tmp / META).is_file():
            raise RuntimeError("cache built without meta.json")
        old = None
        if final.exists():
            if not force and read_meta(final) is not None:
                # Someone else finished the same cache meanwhile: keep theirs.
                shutil.rmtree(tmp, ignore_errors=True)
                return
            old = root / f".{cache_name}.tmp-old-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
        try:
            os.replace(tmp, final)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) and read_meta(final) is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        # Disk full, permissions, a file vanishing mid-read: one line, nothing half-written.
        shutil.rmtree(tmp, ignore_errors=True)
        where = f" ({exc.filename})" if exc.filename else ""
        raise DataError(f"preparing {cache_name} in {root} failed: "
                        f"{exc.strerror or exc}{where}; free space or fix permissions and "
                        "run it again") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_meta(cache_dir: Path, meta: dict) -> None:
    meta = {"format_version": FORMAT_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **meta}
    path = cache_dir / META
    with open(path, "w") as fh:
        json.dump(meta, fh, indent=2, sort_keys=True, default=_json_default)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
