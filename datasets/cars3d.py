"""Cars3D (Reed et al. 2015) from ``nips2015-analogy-data.tar.gz`` into the grid cache.

The archive holds ``data/cars/car_NNN_mesh.mat`` (MATLAB files; ``im`` is uint8
(128, 128, 3, 24, 4): height, width, RGB, azimuth, elevation) and ``data/cars/list.txt`` (the
cars in order), beside other data sets that are skipped. As disentanglement_lib
(data/ground_truth/cars3d.py) does: factors elevation (4), azimuth (24) and object type (183)
in that order, each render resized from 128x128 to 64x64 (32 or 128 at ``--image-size``) with
Pillow's Lanczos filter (its ``ANTIALIAS``). The car's class is its line in ``list.txt``
(disent's order; without the file, the sorted file names).

The archive is gzipped: it is read twice as a stream (first for the list and the names, then
for the images), one car at a time, each written to its rows of the grid: memory holds one
car's 96 renders. A member larger than :data:`MAX_MEMBER` is refused, not read.
"""

from __future__ import annotations

import io
import math
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from bvae_tui.datasets import cache, grid_cache
from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.realsets_files import CARS3D_FILES
from bvae_tui.datasets.registry import DatasetSpec

Progress = Callable[[str, int, "int | None"], None]

MAX_MEMBER = 64 << 20  # a car's .mat is about 6 MB; anything far larger is not one
_LIST = "list.txt"


def find_source(root: Path) -> Path | None:
    path = root / CARS3D_FILES[0].name
    return path if path.is_file() else None


def _bad(path: Path, why: str) -> DataError:
    return DataError(f"{path} is not a usable Cars3D archive ({why}); delete it and run "
                     "`bvae data download cars3d`")


def _is_car(name: str) -> bool:
    parts = name.split("/")
    return len(parts) >= 2 and parts[-2] == "cars" and parts[-1].endswith(".mat")


def _members(path: Path, cars: bool = True) -> Iterator[tuple[tarfile.TarInfo, bytes | None]]:
    """(member, its bytes for list.txt and (``cars``) the cars' files, else None), streaming;
    a car's member is yielded (with None) even when its bytes are not read."""
    try:
        with tarfile.open(path, "r|*") as tar:
            for info in tar:
                base = info.name.split("/")[-1]
                wanted = info.isfile() and (_is_car(info.name) or (
                    base == _LIST and info.name.split("/")[-2:-1] == ["cars"]))
                if not wanted or (not cars and _is_car(info.name)):
                    yield info, None
                    continue
                if info.size > MAX_MEMBER:
                    raise _bad(path, f"{info.name} is {info.size} bytes")
                fh = tar.extractfile(info)
                data = fh.read() if fh is not None else b""
                if len(data) != info.size:
                    raise _bad(path, f"{info.name} is truncated")
                yield info, data
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise _bad(path, f"{type(exc).__name__}: {exc}") from None


def _car_order(path: Path) -> list[str]:
    """Stems of the cars in class order: list.txt's, else the sorted .mat names."""
    listed: list[str] | None = None
    names: list[str] = []
    for info, data in _members(path, cars=False):  # the names only: no car is read here
        if data is not None:
            listed = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines()
                      if ln.strip()]
        elif info.isfile() and _is_car(info.name):
            names.append(info.name.split("/")[-1].removesuffix(".mat"))
    if len(set(names)) != len(names):
        raise _bad(path, "a car's file is in it twice")
    if listed is None:
        return sorted(names)
    if sorted(listed) != sorted(names) or len(set(listed)) != len(listed):
        raise _bad(path, f"{_LIST} does not list exactly its {len(names)} cars' files")
    return listed


def _renders(path: Path, name: str, data: bytes, el: int, az: int, side: int) -> np.ndarray:
    """(az * el, 3, side, side) renders of one car, in the order azimuth major, elevation minor."""
    from PIL import Image
    from scipy.io import loadmat

    try:
        im = loadmat(io.BytesIO(data), variable_names=["im"]).get("im")
    except Exception as exc:  # noqa: BLE001 - scipy raises many types for a damaged .mat
        raise _bad(path, f"{name}: {type(exc).__name__}: {exc}") from None
    if not isinstance(im, np.ndarray) or im.dtype != np.uint8 \
            or im.shape[2:] != (3, az, el) or im.shape[0] != im.shape[1]:
        got = f"{im.dtype} {im.shape}" if isinstance(im, np.ndarray) else "no 'im'"
        raise _bad(path, f"{name}: im is {got}, expected uint8 (128, 128, 3, {az}, {el})")
    out = np.empty((az * el, 3, side, side), dtype=np.uint8)
    for a in range(az):
        for e in range(el):
            img = Image.fromarray(np.ascontiguousarray(im[:, :, :, a, e]))
            if img.size != (side, side):
                img = img.resize((side, side), Image.Resampling.LANCZOS)
            out[a * el + e] = np.asarray(img).transpose(2, 0, 1)
    return out


def prepare_cars3d(spec: DatasetSpec, root: Path, path: Path, progress: Progress | None,
                   force: bool) -> None:
    sizes = tuple(int(s) for s in spec.factor_sizes)  # elevation, azimuth, object type
    el, az, cars = sizes
    n = math.prod(sizes)
    side = int(spec.image_size)  # 64, or 32 / 128 for --image-size
    order = _car_order(path)
    if len(order) != cars:
        raise _bad(path, f"{len(order)} cars, expected {cars}")
    klass = {stem: i for i, stem in enumerate(order)}
    grid_cache.check_disk(root, grid_cache.cache_bytes(n, 3 * side * side, 3), spec.name)
    # Rows of one car's renders (azimuth major, elevation minor) in the grid, car 0.
    e_idx, a_idx = np.tile(np.arange(el), az), np.repeat(np.arange(az), el)
    values = [np.arange(el), np.arange(az), np.arange(cars)]
    with cache.building(root, spec.cache_name, force) as tmp:
        writer = grid_cache.GridWriter(tmp / cache.IMAGES, n, (3, side, side))
        try:
            done = 0
            for info, data in _members(path):
                if data is None or info.name.endswith(_LIST):
                    continue
                stem = info.name.split("/")[-1].removesuffix(".mat")
                car = np.full(az * el, klass[stem])
                where = grid_cache.grid_index(np.stack([e_idx, a_idx, car], axis=1), sizes)
                writer.put(where, _renders(path, info.name, data, el, az, side))
                done += 1
                if progress:
                    progress("import", done * az * el, n)
            try:
                sha1 = writer.close()
            except DataError as exc:
                raise _bad(path, str(exc)) from None
        except BaseException:
            writer.abort()
            raise
        grid_cache.save_grid_tables(tmp, sizes, values)
        cache.write_meta(tmp, {
            "name": spec.name, "title": spec.title, "source": "files", "origin": str(path),
            "count": n, "channels": 3, "binary": False, "packed": False,
            "checksum": {"images_sha1": sha1},
            "factor_names": list(spec.factor_names), "factor_sizes": list(sizes),
            "factor_values": [v.astype(np.float64).tolist() for v in values],
            "cars": order, "resize": f"128x128 -> {side}x{side}, Pillow Lanczos",
        })
