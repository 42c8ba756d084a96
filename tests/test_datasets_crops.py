"""The 32x32 sprite-crop form of dSprites-grid caches (datasets.crops) and its training tensor."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from bvae_tui.datasets import crops
from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.prepare import _prepare_real_dsprites, open_dataset, prepare
from bvae_tui.datasets.registry import get_spec

torch = pytest.importorskip("torch")
from bvae_tui.datasets.tensors import DeviceImages  # noqa: E402  (needs torch)


def _sha1_of(path) -> str:
    arr = np.load(path, mmap_mode="r")
    return hashlib.sha1(path.read_bytes()[arr.offset:]).hexdigest()


def test_mini_cache_stores_verified_crops(mini_data_dir):
    ds = open_dataset("dsprites-mini", mini_data_dir)
    meta = ds.meta["crops"]
    assert meta["stored"] is True and meta["size"] == 32 and meta["count"] == ds.n
    assert ds.crops.shape == (ds.n, 128) and ds.crop_origin.shape == (ds.n, 2)
    cdir = mini_data_dir / "dsprites-mini"
    assert _sha1_of(cdir / "crops.npy") == meta["crops_sha1"]
    assert _sha1_of(cdir / "crop_origin.npy") == meta["origin_sha1"]
    # the crops put back in place are exactly the stored images
    full = ds.images_at(np.arange(ds.n))[:, 0]
    np.testing.assert_array_equal(crops.uncrop(ds.crops, ds.crop_origin), full)
    assert ds.crop_origin.max() <= 32


def test_crop_batches_equal_full_batches(mini_data_dir):
    ds = open_dataset("dsprites-mini", mini_data_dir)
    cropped = DeviceImages(ds, "cpu")
    full = DeviceImages(ds, "cpu", crops=False)
    assert cropped.cropped and not full.cropped
    assert cropped.nbytes == ds.n * (128 + 2) and full.nbytes == ds.n * 512
    gen = torch.Generator().manual_seed(7)
    for size in (1, 3, 64, 500):
        for _ in range(5):
            idx = torch.randint(0, ds.n, (size,), generator=gen)
            x = cropped.batch(idx)
            assert x.dtype == torch.float32 and x.shape == (size, 1, 64, 64)
            assert torch.equal(x, full.batch(idx))
    every = torch.arange(ds.n)
    assert torch.equal(cropped.batch(every), full.batch(every))
    np.testing.assert_array_equal(cropped.batch(every[:50]).numpy(),
                                  ds.float_images_at(np.arange(50)))


def _blob_images(rng, n, max_extent):
    """Random rectangles-with-holes anywhere in the frame (edges and corners included)."""
    imgs = np.zeros((n, 64, 64), dtype=np.uint8)
    for k in range(n):
        h, w = rng.randint(1, max_extent + 1, size=2)
        r, c = rng.randint(0, 64 - h + 1), rng.randint(0, 64 - w + 1)
        imgs[k, r:r + h, c:c + w] = rng.rand(h, w) < 0.6
        imgs[k, r, c] = imgs[k, r + h - 1, c + w - 1] = 1  # keep the box's extent
    return imgs


def test_crop_packed_against_reference():
    rng = np.random.RandomState(0)
    imgs = np.concatenate([_blob_images(rng, 400, 32), np.zeros((2, 64, 64), np.uint8)])
    c, o, ok = crops.crop_images(imgs)
    assert ok.all() and c.shape == (402, 128) and o.dtype == np.uint8
    np.testing.assert_array_equal(crops.uncrop(c, o), imgs)
    big = _blob_images(rng, 50, 40)
    extent = [max(np.ptp(np.nonzero(im.any(axis=a))[0]) + 1 for a in (0, 1)) for im in big]
    _, _, ok = crops.crop_images(big)
    np.testing.assert_array_equal(ok, np.array(extent) <= 32)


def _npz_of(ds, path, imgs):
    with open(path, "wb") as fh:
        np.savez(fh, imgs=imgs, latents_values=np.asarray(ds.values),
                 latents_classes=np.asarray(ds.classes))
    return path


def test_real_import_crops_and_oversized_sprite_fallback(tmp_path, mini_data_dir):
    from bvae_tui.datasets import dsprites

    ds = open_dataset("dsprites-mini", mini_data_dir)
    imgs = ds.images_at(np.arange(ds.n))[:, 0]
    spec = get_spec("dsprites-mini")
    # the real-file import stores the same crops as the generator
    good = _npz_of(ds, tmp_path / "good.npz", imgs)
    _prepare_real_dsprites(spec, tmp_path / "a", good, None, False, grid=dsprites.mini_grid())
    real = open_dataset("dsprites-mini", tmp_path / "a", prepare_missing=False)
    assert real.source == "real" and real.meta["crops"]["stored"] is True
    np.testing.assert_array_equal(np.asarray(real.crops), np.asarray(ds.crops))
    np.testing.assert_array_equal(np.asarray(real.crop_origin), np.asarray(ds.crop_origin))
    # one image whose pixels span more than 32 pixels: no crops at all, full images train
    imgs = imgs.copy()
    imgs[1234, 0, 0] = imgs[1234, 63, 63] = 1
    bad = _npz_of(ds, tmp_path / "bad.npz", imgs)
    _prepare_real_dsprites(spec, tmp_path / "b", bad, None, False, grid=dsprites.mini_grid())
    cdir = tmp_path / "b" / "dsprites-mini"
    meta = json.loads((cdir / "meta.json").read_text())
    assert meta["crops"]["stored"] is False and "image 1234" in meta["crops"]["reason"]
    assert sorted(p.name for p in cdir.iterdir()) == [
        "classes.npy", "images.npy", "meta.json", "values.npy"]
    fallback = open_dataset("dsprites-mini", tmp_path / "b", prepare_missing=False)
    assert fallback.crops is None
    dev = DeviceImages(fallback, "cpu")
    assert not dev.cropped and dev.nbytes == ds.n * 512
    idx = torch.tensor([0, 1234, 4607])
    np.testing.assert_array_equal(dev.batch(idx).numpy(), imgs[idx.numpy()][:, None])


def test_cache_without_crops_still_loads(tmp_path, mini_data_dir):
    """A cache prepared before crops existed: no crop files, no ``crops`` in meta.json."""
    cdir = tmp_path / "dsprites-mini"
    shutil.copytree(mini_data_dir / "dsprites-mini", cdir)
    (cdir / "crops.npy").unlink()
    (cdir / "crop_origin.npy").unlink()
    meta = json.loads((cdir / "meta.json").read_text())
    del meta["crops"]
    (cdir / "meta.json").write_text(json.dumps(meta))
    ds = prepare("dsprites-mini", tmp_path)  # already prepared: opened as it is, not rebuilt
    assert ds.crops is None and not (cdir / "crops.npy").exists()
    dev = DeviceImages(ds, "cpu")
    assert not dev.cropped and dev.nbytes == ds.n * 512
    idx = torch.tensor([3, 999, 4000])
    np.testing.assert_array_equal(dev.batch(idx).numpy(), ds.float_images_at(idx.numpy()))


def test_missing_crop_file_is_reported(tmp_path):
    prepare("dsprites-mini", tmp_path)
    (tmp_path / "dsprites-mini" / "crops.npy").unlink()
    with pytest.raises(DataError, match="crops.npy is missing.*--force"):
        open_dataset("dsprites-mini", tmp_path)
