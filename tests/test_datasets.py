"""The Dataset API on the prepared dsprites-mini grid (procedural, 4,608 images)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bvae_tui.datasets import dsprites
from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.loader import dataset_status
from bvae_tui.datasets.prepare import open_dataset, prepare


def test_mini_is_prepared_with_meta(mini_data_dir):
    ds = open_dataset("dsprites-mini", mini_data_dir, prepare_missing=False)
    assert ds.n == 4608 == len(ds)
    assert ds.source == "procedural"
    assert ds.packed and ds.binary and ds.channels == 1
    assert ds.images.shape == (4608, 512) and ds.images.dtype == np.uint8
    assert isinstance(ds.images, np.memmap)
    assert ds.factor_names == ("color", "shape", "scale", "orientation", "posX", "posY")
    assert ds.factor_sizes == (1, 3, 3, 8, 8, 8)
    assert ds.classes.shape == (4608, 6) and ds.classes.dtype == np.int64
    assert ds.values.shape == (4608, 6) and ds.values.dtype == np.float64
    meta = json.loads((mini_data_dir / "dsprites-mini" / "meta.json").read_text())
    assert meta["count"] == 4608 and meta["source"] == "procedural"
    assert len(meta["checksum"]["images_sha1"]) == 40


def test_status(mini_data_dir):
    st = dataset_status("dsprites-mini", mini_data_dir)
    assert st["prepared"] is True and st["source"] == "procedural" and st["count"] == 4608
    assert st["size_bytes"] > 4608 * 512
    assert st["location"].endswith("dsprites-mini")
    st = dataset_status("dsprites", mini_data_dir)
    assert st["prepared"] is False and st["source"] is None and st["count"] is None


def test_index_classes_roundtrip(mini_data_dir):
    ds = open_dataset("dsprites-mini", mini_data_dir)
    rng = np.random.RandomState(3)
    classes = ds.sample_factors(200, rng)
    assert classes.shape == (200, 6) and classes.dtype == np.int64
    assert (classes.max(axis=0) < np.array(ds.factor_sizes)).all()
    idx = ds.index_of(classes)
    np.testing.assert_array_equal(ds.classes[idx], classes)
    # storage order: the last factor (posY) varies fastest
    np.testing.assert_array_equal(ds.index_of([[0, 0, 0, 0, 0, 1]]), [1])
    np.testing.assert_array_equal(ds.index_of([[0, 0, 0, 0, 1, 0]]), [8])
    np.testing.assert_array_equal(ds.index_of(ds.classes[:]), np.arange(ds.n))
    with pytest.raises(IndexError):
        ds.index_of([[0, 3, 0, 0, 0, 0]])


def test_images_match_reference_renderer(mini_data_dir):
    ds = open_dataset("dsprites-mini", mini_data_dir)
    idx = np.array([0, 77, 1000, 2222, 3001, 4607])
    imgs = ds.images_at(idx)
    assert imgs.shape == (6, 1, 64, 64) and imgs.dtype == np.uint8
    assert set(np.unique(imgs)) <= {0, 1}
    for k, i in enumerate(idx):
        _, shape, scale, theta, px, py = ds.values[i]
        ref = dsprites.render(int(shape) - 1, scale, theta, px, py)
        np.testing.assert_array_equal(imgs[k, 0], ref)
    f = ds.float_images_at(idx)
    assert f.dtype == np.float32 and f.max() == 1.0
    np.testing.assert_array_equal(ds.images_for(ds.classes[idx]), imgs)


def test_device_images_batch(mini_data_dir):
    torch = pytest.importorskip("torch")
    from bvae_tui.datasets.tensors import DeviceImages

    ds = open_dataset("dsprites-mini", mini_data_dir)
    dev = DeviceImages(ds, "cpu", crops=False)  # the crop path: tests/test_datasets_crops.py
    assert dev.n == ds.n and dev.channels == 1 and dev.nbytes == ds.n * 512
    idx = torch.tensor([5, 4000, 17])
    batch = dev.batch(idx)
    assert batch.dtype == torch.float32 and batch.shape == (3, 1, 64, 64)
    np.testing.assert_array_equal(batch.numpy(), ds.float_images_at(idx.numpy()))


def test_prepare_is_idempotent_and_deterministic(tmp_path, mini_data_dir):
    ds = prepare("dsprites-mini", tmp_path)
    again = prepare("dsprites-mini", tmp_path, force=True)
    ref = open_dataset("dsprites-mini", mini_data_dir)
    assert ds.meta["checksum"] == again.meta["checksum"] == ref.meta["checksum"]
    assert (tmp_path / "dsprites-mini" / "images.npy").read_bytes() == \
        (mini_data_dir / "dsprites-mini" / "images.npy").read_bytes()
    # nothing temporary left behind
    assert [p.name for p in tmp_path.iterdir()] == ["dsprites-mini"]


def test_open_missing_without_prepare(tmp_path):
    with pytest.raises(DataError, match="bvae data prepare dsprites-mini"):
        open_dataset("dsprites-mini", tmp_path, prepare_missing=False)


def test_open_missing_prepares(tmp_path):
    ds = open_dataset("dsprites-mini", tmp_path)
    assert ds.n == 4608


def test_no_factors_error_message():
    from bvae_tui.datasets.registry import get_spec

    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        get_spec("nope")


def test_checksum_covers_the_image_bytes(mini_data_dir):
    import hashlib

    ds = open_dataset("dsprites-mini", mini_data_dir)
    raw = (mini_data_dir / "dsprites-mini" / "images.npy").read_bytes()
    assert hashlib.sha1(raw[ds.images.offset:]).hexdigest() == ds.meta["checksum"]["images_sha1"]
    np.testing.assert_array_equal(ds.read_rows(100, 200), ds.images[100:200])


def _copy_mini(mini_data_dir, root):
    import shutil

    shutil.copytree(mini_data_dir / "dsprites-mini", root / "dsprites-mini")
    return root / "dsprites-mini"


@pytest.mark.parametrize("damage", ["truncate", "delete_classes", "old_format"])
def test_status_and_check_report_a_damaged_cache(tmp_path, mini_data_dir, damage):
    from bvae_tui.datasets.loader import check_available

    cdir = _copy_mini(mini_data_dir, tmp_path)
    assert check_available("dsprites-mini", tmp_path) == 4608  # sound: the size training sees
    if damage == "truncate":
        data = (cdir / "images.npy").read_bytes()
        (cdir / "images.npy").write_bytes(data[: len(data) - 100])
    elif damage == "delete_classes":
        (cdir / "classes.npy").unlink()
    else:
        meta = json.loads((cdir / "meta.json").read_text())
        meta["format_version"] = 0
        (cdir / "meta.json").write_text(json.dumps(meta))
    st = dataset_status("dsprites-mini", tmp_path)
    assert st["prepared"] is False and st["source"] == "damaged" and st["count"] is None
    assert st["fix"] == "bvae data prepare dsprites-mini --force" and st["problem"]
    with pytest.raises(DataError) as exc:
        check_available("dsprites-mini", tmp_path)
    assert str(exc.value) == st["problem"] and "\n" not in st["problem"]
    assert "bvae data prepare dsprites-mini --force" in st["problem"]
    with pytest.raises(DataError):  # what opening it would raise too
        open_dataset("dsprites-mini", tmp_path, prepare_missing=False)


def test_check_available(tmp_path):
    from PIL import Image

    from bvae_tui.datasets.loader import check_available
    from bvae_tui.datasets.registry import DSPRITES_FILE, SHAPES3D_FILE

    root = tmp_path / "data"
    for name in ("dsprites", "dsprites-mini"):  # generated offline: always available
        assert check_available(name, root) is None  # not built yet: size not known
    assert not root.exists()  # nothing prepared or created
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        check_available("nope", root)
    for name, needle in (("celeba", "celeba.zip"), ("chairs", "rendered_chairs.tar"),
                         ("shapes3d", SHAPES3D_FILE)):
        with pytest.raises(DataError) as exc:
            check_available(name, root)
        msg = str(exc.value)
        assert needle in msg and f"bvae data download {name}" in msg and str(root) in msg
        assert "\n" not in msg
    root.mkdir()
    (root / SHAPES3D_FILE).write_bytes(b"x")
    (root / "celeba.zip").write_bytes(b"x")
    (root / DSPRITES_FILE).write_bytes(b"x")
    check_available("shapes3d", root)
    check_available("celeba", root)
    check_available("dsprites", root)
    with pytest.raises(DataError, match="does not exist"):
        check_available(f"folder:{tmp_path / 'nope'}", root)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match="is not a folder"):
        check_available(f"folder:{tmp_path / 'afile'}", root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no jpg/png images"):
        check_available(f"folder:{tmp_path / 'empty'}", root)
    Image.new("RGB", (8, 8)).save(tmp_path / "empty" / "a.png")
    folder = f"folder:{tmp_path / 'empty'}"
    assert check_available(folder, root) is None
    from bvae_tui.datasets.prepare import prepare

    prepare(folder, tmp_path / "prepared")
    assert check_available(folder, tmp_path / "prepared") == 1
    Image.new("RGB", (8, 8)).save(tmp_path / "empty" / "b.png")  # the folder changed since
    assert check_available(folder, tmp_path / "prepared") is None  # rebuilt: old size void
    with pytest.raises(DataError) as exc:
        check_available("dsprites-mini", tmp_path / "afile")
    assert "is not a folder" in str(exc.value) and "BVAE_DATA_DIR" in str(exc.value)
    assert sorted(p.name for p in root.iterdir()) == sorted(  # still nothing prepared here
        [SHAPES3D_FILE, "celeba.zip", DSPRITES_FILE])
