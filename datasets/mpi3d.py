"""MPI3D (Gondal et al. 2019: toy, realistic, real) from its npz into the grid cache.

Each file is a zip holding ``images.npy``: uint8 (1036800, 64, 64, 3), the full grid of its 7
factors in C order (last factor fastest: ``reshape([6, 6, 2, 3, 3, 40, 40, 64, 64, 3])`` in the
authors' README), with no label arrays. 12.7 GB of images: the member is never loaded. Its
header is read with ``np.lib.format`` from the zip member's stream, checked against the size the
zip says the member has, then its rows are read, made channels-first and appended to the cache
:data:`_CHUNK` images at a time, so memory holds two chunks (the rows read and their transpose,
about 50 MB each) plus the factor tables (2 x N x 7 x 8 bytes, 116 MB for the full grid) and
the zip's inflate buffer, whatever the file's size.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bvae_tui.datasets import cache, grid_cache
from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.realsets_files import MPI3D_FILES
from bvae_tui.datasets.registry import DatasetSpec

Progress = Callable[[str, int, "int | None"], None]

_CHUNK = 4096  # images a read: 48 MiB
_MEMBER = "images.npy"
_ROW = (64, 64, 3)


def find_source(name: str, root: Path) -> Path | None:
    path = root / MPI3D_FILES[name][0].name
    return path if path.is_file() else None


class _Bad(Exception):
    pass


def _bad(path: Path, name: str, why: str) -> DataError:
    return DataError(f"{path} is not a usable {name} npz ({why}); delete it and run "
                     f"`bvae data download {name}`")


def _open_member(zf: zipfile.ZipFile):
    try:
        return zf.open(_MEMBER)
    except KeyError:
        raise _Bad(f"no {_MEMBER} in it") from None


def _read_header(fh) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    if fortran:
        raise _Bad(f"{_MEMBER} is in Fortran order")
    return tuple(int(s) for s in shape), np.dtype(dtype)


def prepare_mpi3d(spec: DatasetSpec, root: Path, path: Path, progress: Progress | None,
                  force: bool) -> None:
    sizes = tuple(int(s) for s in spec.factor_sizes)
    n = math.prod(sizes)
    row = math.prod(_ROW)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise _bad(path, spec.name, f"not a valid zip: {exc}") from None
    with zf:
        try:
            with _open_member(zf) as fh:
                shape, dtype = _read_header(fh)
                offset = fh.tell()
            if dtype != np.uint8 or shape != (n, *_ROW):
                raise _Bad(f"images is {dtype} {shape}, expected uint8 ({n}, 64, 64, 3)")
            # A header costs nothing to craft: the member must hold the bytes it promises.
            if zf.getinfo(_MEMBER).file_size < offset + n * row:
                raise _Bad(f"images is truncated: its header says {shape}")
        except _Bad as exc:
            raise _bad(path, spec.name, str(exc)) from None
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error,
                NotImplementedError, RuntimeError) as exc:
            raise _bad(path, spec.name, f"{_MEMBER}: {exc}") from None
        grid_cache.check_disk(root, grid_cache.cache_bytes(n, row, len(sizes)), spec.name)
        with cache.building(root, spec.cache_name, force) as tmp:
            writer = cache.NpyWriter(tmp / cache.IMAGES, (3, 64, 64))
            try:
                with _open_member(zf) as fh:
                    _read_header(fh)
                    while writer.rows < n:
                        take = min(_CHUNK, n - writer.rows)
                        try:
                            buf = fh.read(take * row)
                        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                            raise _bad(path, spec.name, f"images: {exc}") from None
                        if len(buf) != take * row:
                            raise _bad(path, spec.name, "images is truncated")
                        block = np.frombuffer(buf, dtype=np.uint8).reshape(take, *_ROW)
                        writer.append(block.transpose(0, 3, 1, 2))
                        del buf, block
                        if progress:
                            progress("import", writer.rows, n)
            except BaseException:
                writer.abort()
                raise
            writer.close()
            values = [np.arange(s) for s in sizes]
            grid_cache.save_grid_tables(tmp, sizes, values)
            cache.write_meta(tmp, {
                "name": spec.name, "title": spec.title, "source": "files", "origin": str(path),
                "count": n, "channels": 3, "binary": False, "packed": False,
                "checksum": {"images_sha1": writer.sha1.hexdigest()},
                "factor_names": list(spec.factor_names), "factor_sizes": list(sizes),
                "factor_values": [v.astype(np.float64).tolist() for v in values],
            })
