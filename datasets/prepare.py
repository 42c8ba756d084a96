"""Prepare a dataset once into the cache (see :mod:`datasets.cache`).

* ``dsprites``: the real npz when it is in the data dir (``bvae data download dsprites`` puts it
  there), else the procedural generator. meta.json's ``source`` says which ("real"/"procedural").
* ``dsprites-mini``: always procedural, a (1, 3, 3, 8, 8, 8) sub-grid.
* ``celeba`` / ``chairs`` / ``folder:PATH``: decoded from their files (source "files").
* ``shapes3d``: imported from ``3dshapes.h5`` (source "files"), with its factor grid.

Both dSprites sources also store each image's 32x32 sprite crop (``datasets.crops``), verified to
hold every on-pixel, which training uses instead of the full images (4x smaller).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from bvae_tui.datasets import cache, crops, dsprites, images, npz, realsets, shapes3d
from bvae_tui.datasets.download import download_dataset
from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.image_size import size_flag, sized
from bvae_tui.datasets.loader import (
    Dataset,
    cache_dir_of,
    folder_changed,
    folder_changed_error,
    folder_missing_error,
    open_cached,
    open_prepared,
)
from bvae_tui.datasets.registry import (
    IMAGE_SIZE,
    DatasetSpec,
    data_root,
    find_real_dsprites,
    get_spec,
)

Progress = Callable[[str, int, "int | None"], None]

GENERATOR_VERSION = 1


def open_dataset(name: str, data_dir: str | os.PathLike | None = None,
                 prepare_missing: bool = True, image_size: int = IMAGE_SIZE) -> Dataset:
    """Open the prepared cache of ``name`` at ``image_size`` (each size is a cache of its own);
    prepare it first when missing and allowed.

    A ``folder:PATH`` cache whose image files changed since it was prepared is rebuilt when
    preparing is allowed, else refused with the command that rebuilds it.
    """
    spec = sized(get_spec(name), image_size)
    if spec.extra.get("variant"):  # a dSprites variant: its image, then its base's cache
        from bvae_tui.datasets import dsprites_variants

        dsprites_variants.check_source(spec, data_root(data_dir))  # before a base is built
        base = open_dataset(spec.extra["base"], data_dir, prepare_missing)
        return open_cached(spec, base.cache_dir, base.meta)
    cdir = cache_dir_of(spec, data_dir)
    meta = cache.read_meta(cdir)
    if meta is None:
        if not prepare_missing:
            raise DataError(f"dataset '{spec.name}' is not prepared in {cdir.parent}; run: "
                            f"bvae data prepare {name}{size_flag(spec)}")
        return prepare(name, data_dir, image_size=image_size)
    if spec.folder is not None and folder_changed(spec, meta):
        if not prepare_missing:
            raise folder_missing_error(spec) or folder_changed_error(spec)
        return prepare(name, data_dir, image_size=image_size)
    if (prepare_missing and spec.name == "dsprites" and meta.get("source") == "procedural"
            and find_real_dsprites(cdir.parent) is not None):
        return prepare(name, data_dir)  # the real file arrived: it replaces the procedural
    return open_cached(spec, cdir, meta)


def prepare(name: str, data_dir: str | os.PathLike | None = None,
            progress: Progress | None = None, force: bool = False,
            download: bool = False, image_size: int = IMAGE_SIZE) -> Dataset:
    """Prepare ``name`` into the cache (unless already prepared and not ``force``), open it.
    ``image_size``: the side of the square images (a cache per size; see datasets.image_size).

    ``download``: fetch a missing source file first (real dSprites, CelebA, 3D Chairs); without
    it, dSprites falls back to the procedural set and the others need their files in place.
    """
    spec = sized(get_spec(name), image_size)
    if spec.extra.get("variant"):  # a dSprites variant: its image, then its base prepared
        from bvae_tui.datasets import dsprites_variants

        if download and spec.extra["variant"] == "scream":
            download_dataset(spec.name, data_dir, progress=progress)  # a no-op when it is there
        dsprites_variants.check_source(spec, data_root(data_dir))
        base = prepare(spec.extra["base"], data_dir, progress, force, download)
        return open_cached(spec, base.cache_dir, base.meta)
    root = data_root(data_dir)
    meta = None if force else cache.read_meta(cache_dir_of(spec, root))
    if meta is not None:
        upgrade = (spec.name == "dsprites" and meta.get("source") == "procedural"
                   and find_real_dsprites(root) is not None)
        changed = spec.folder is not None and folder_changed(spec, meta)
        if not upgrade and not changed:
            return open_prepared(name, root, image_size)
        if changed and progress:
            progress("rebuild", 0, None)  # folder changed since it was prepared: rebuilding
        force = True  # the real file arrived / the folder changed: rebuild
    if spec.name == "dsprites":
        real = find_real_dsprites(root)
        if real is None and download:
            real = download_dataset("dsprites", root, progress=progress)
        if real is not None:
            _prepare_real_dsprites(spec, root, real, progress, force)
        else:
            _prepare_procedural(spec, root, dsprites.full_grid(), progress, force)
    elif spec.name == "dsprites-mini":
        _prepare_procedural(spec, root, dsprites.mini_grid(), progress, force)
    elif spec.name == "shapes3d":
        src = shapes3d.find_source(root)
        if src is None and download:
            src = download_dataset("shapes3d", root, progress=progress)
        if src is None:
            raise DataError(f"shapes3d is not in {root}: {spec.source_hint} {root}, or run: "
                            "bvae data download shapes3d")
        shapes3d.prepare_shapes3d(spec, root, src, progress, force)
    elif spec.name in realsets.NAMES:  # SmallNORB, Cars3D, MPI3D
        if download and realsets.find_source(spec, root) is None:
            download_dataset(spec.name, root, progress=progress)
        realsets.prepare_realset(spec, root, progress, force)
    else:
        images.prepare_images(spec, root, progress, force, download)
    return open_prepared(name, root, image_size)


def _factor_meta(spec: DatasetSpec, grid: dsprites.Grid) -> dict:
    return {
        "factor_names": list(spec.factor_names),
        "factor_sizes": list(grid.sizes),
        "factor_values": [np.asarray(v).tolist() for v in grid.values],
        # Class indices of each kept value in the full dSprites grid (identity for dsprites).
        "full_grid_classes": [np.asarray(c).tolist() for c in grid.full_classes],
    }


def _write_factors(tmp: Path, grid: dsprites.Grid) -> None:
    cache.save_array(tmp / cache.CLASSES, grid.classes())
    cache.save_array(tmp / cache.VALUES, grid.latent_values())


def _write_dsprites_cache(spec: DatasetSpec, root: Path, grid: dsprites.Grid, force: bool,
                          packed_chunks: Iterator[np.ndarray], meta: dict) -> None:
    """Build a dSprites-grid cache from chunks of bit-packed images (generated or imported):
    the images, their verified 32x32 crops, the factor table and meta.json, all or nothing."""
    with cache.building(root, spec.cache_name, force) as tmp:
        writer = cache.NpyWriter(tmp / cache.IMAGES, (dsprites.PACKED_BYTES,))
        cropper = crops.CropWriter(tmp)
        ones = 0
        try:
            for packed in packed_chunks:
                writer.append(packed)
                cropper.append_packed(packed)
                ones += int(np.bitwise_count(packed).sum(dtype=np.int64))
        except BaseException:
            writer.abort()
            cropper.abort()
            raise
        writer.close()
        crop_meta = cropper.close()
        _write_factors(tmp, grid)
        cache.write_meta(tmp, {
            "name": spec.name, "title": spec.title, **meta,
            "count": writer.rows, "channels": 1, "binary": True, "packed": True,
            "checksum": {"images_sha1": writer.sha1.hexdigest()},
            "pixel_mean": ones / (writer.rows * 4096), "crops": crop_meta,
            **_factor_meta(spec, grid),
        })


def _prepare_procedural(spec: DatasetSpec, root: Path, grid: dsprites.Grid,
                        progress: Progress | None, force: bool) -> None:
    cb = (lambda d, t: progress("generate", d, t)) if progress else None
    chunks = (packed for _start, packed in
              dsprites.iter_packed(grid, workers=_workers(), progress=cb))
    _write_dsprites_cache(spec, root, grid, force, chunks, {
        "source": "procedural",
        "origin": f"bvae-tui procedural dSprites generator v{GENERATOR_VERSION}",
        "generator_version": GENERATOR_VERSION,
    })


def _workers() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else (os.cpu_count() or 1)))


def _prepare_real_dsprites(spec: DatasetSpec, root: Path, path: Path,
                           progress: Progress | None, force: bool,
                           grid: dsprites.Grid | None = None) -> None:
    """Import a dSprites npz (chunk-wise, bit-packing as it goes). ``grid``: the grid the file
    must hold (the full one; tests import small files of the mini grid)."""
    grid = grid or dsprites.full_grid()

    def chunks() -> Iterator[np.ndarray]:
        with npz.DspritesNpzReader(path) as reader:
            reader.check_factors(grid)
            done = 0
            for imgs in reader.iter_images(chunk=8192):
                yield np.packbits(imgs.reshape(len(imgs), -1), axis=1)
                done += len(imgs)
                if progress:
                    progress("import", done, reader.n)

    _write_dsprites_cache(spec, root, grid, force, chunks(), {"source": "real",
                                                               "origin": str(path)})


__all__ = ["open_dataset", "prepare", "DataError"]
