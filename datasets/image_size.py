"""Image sizes other than 64x64 (``--image-size 32|64|128``): which datasets allow which.

A dataset whose source images are larger than 64x64 (CelebA, 3D Chairs, folders, and any spec
listing more than 64 in :attr:`DatasetSpec.image_sizes`) can be prepared at 32, 64 or 128; each
size is a cache of its own (``<cache>-128px``), and 64 keeps the name and place caches always
had. A dataset that is 64x64 at the source (dSprites and its variants, 3dshapes, MPI3D) is 64
only: upsampling it to 128 would invent detail, and we chose not to downsample it to 32 either
(binary dSprites would stop being binary and its 32x32 sprite crops would no longer apply).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bvae_tui.datasets.cache import META
from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.registry import IMAGE_SIZE, DatasetSpec

# Every size the networks are built for (engine.train.models.IMAGE_SIZES says the same; this
# package cannot import the engine).
IMAGE_SIZES = (32, 64, 128)


def _listed(sizes: tuple[int, ...]) -> str:
    return ", ".join(map(str, sizes[:-1])) + f" or {sizes[-1]}" if len(sizes) > 1 \
        else str(sizes[0])


def size_error(size: object) -> DataError | None:
    """The one-line error for a size no network is built for (e.g. 100), else None."""
    if isinstance(size, bool) or not isinstance(size, int) or size not in IMAGE_SIZES:
        return DataError(f"--image-size must be {_listed(IMAGE_SIZES)}; got {size!r}")
    return None


def sized(spec: DatasetSpec, size: int = IMAGE_SIZE) -> DatasetSpec:
    """``spec`` for ``size`` x ``size`` images, or a one-line :class:`DataError` naming the sizes
    the dataset allows."""
    err = size_error(size)
    if err is not None:
        raise err
    if size not in spec.image_sizes:
        why = ("it is 64x64 at the source" if spec.image_sizes == (IMAGE_SIZE,) else
               f"it can be prepared at {_listed(spec.image_sizes)}")
        raise DataError(f"dataset '{spec.name}' cannot be used at --image-size {size}: {why}; "
                        f"give --image-size {_listed(spec.image_sizes)}")
    if size == spec.image_size:
        return spec
    # A title that names the side ("centre-cropped to 64x64 RGB") names this one.
    return dataclasses.replace(spec, image_size=size,
                               title=spec.title.replace("64x64", f"{size}x{size}"))


def size_flag(spec: DatasetSpec) -> str:
    """`` --image-size N`` for a spec of another size than 64 (what a command must add to reach
    that cache), else empty."""
    return "" if spec.image_size == IMAGE_SIZE else f" --image-size {spec.image_size}"


def prepared_sizes(spec: DatasetSpec, root: Path) -> list[int]:
    """The sizes other than 64 at which ``spec`` has a cache under ``root`` (complete or
    damaged: ``bvae data list`` shows both), smallest first; a cheap look for meta.json."""
    return [size for size in spec.image_sizes if size != IMAGE_SIZE
            and (root / sized(spec, size).cache_name / META).is_file()]
