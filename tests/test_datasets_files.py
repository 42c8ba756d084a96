"""Image datasets from files (folders, CelebA zip/folder, 3D Chairs tar), npz import/export and
bad input: each a one-line DataError, nothing half-written left in the cache."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bvae_tui.datasets import dsprites
from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.loader import open_prepared
from bvae_tui.datasets.prepare import _prepare_real_dsprites, open_dataset, prepare
from bvae_tui.datasets.registry import DSPRITES_FILE, get_spec


def _png(path: Path, size=(40, 30), color=(200, 10, 10), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


def _jpeg_bytes(size=(178, 218), color=(10, 200, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG")
    return buf.getvalue()


def _only_final_dirs(root: Path) -> list[str]:
    """Names under the data root; temp directories would start with a dot."""
    return sorted(p.name for p in root.iterdir())


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg
    return msg


# --- folders -------------------------------------------------------------------------------------

def test_folder_recursive_with_bad_files(tmp_path):
    src = tmp_path / "imgs"
    _png(src / "a.png")
    _png(src / "sub" / "deeper" / "b.PNG", size=(64, 64))
    (src / "sub" / "c.jpg").write_bytes(_jpeg_bytes())
    (src / "broken.jpg").write_bytes(b"not a jpeg at all")
    (src / "notes.txt").write_text("hello")
    root = tmp_path / "data"
    ds = prepare(f"folder:{src}", root)
    assert ds.n == 3 and ds.source == "files" and ds.channels == 3
    assert ds.meta["skipped"] == 1 and ds.meta["ignored_non_images"] == 1
    imgs = ds.images_at(np.arange(3))
    assert imgs.shape == (3, 3, 64, 64) and imgs.dtype == np.uint8
    f = ds.float_images_at([0])
    assert f.dtype == np.float32 and f.min() >= 0 and f.max() <= 1
    # sorted order: a.png first, red
    assert imgs[0, 0].mean() > 190 and imgs[0, 1].mean() < 20
    # reopened by name, memory-mapped
    again = open_dataset(f"folder:{src}", root, prepare_missing=False)
    assert again.n == 3 and isinstance(again.images, np.memmap)
    assert _only_final_dirs(root) == [get_spec(f"folder:{src}").cache_name]


def test_folder_centre_crop(tmp_path):
    # 120 x 60: blue bars left and right, red centre 60 x 60 -> only red after the crop
    img = Image.new("RGB", (120, 60), (0, 0, 255))
    img.paste(Image.new("RGB", (60, 60), (255, 0, 0)), (30, 0))
    src = tmp_path / "wide"
    src.mkdir()
    img.save(src / "w.png")
    ds = prepare(f"folder:{src}", tmp_path / "data")
    out = ds.images_at([0])[0]
    assert out[0].min() > 240 and out[2].max() < 15


def test_empty_and_non_image_folders(tmp_path):
    root = tmp_path / "data"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as exc:
        prepare(f"folder:{empty}", root)
    assert "no jpg/png images" in _one_line(exc)
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("x")
    (texts / "b.csv").write_text("y")
    with pytest.raises(DataError, match="2 other files ignored"):
        prepare(f"folder:{texts}", root)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "x.jpg").write_bytes(b"\xff\xd8 garbage")
    (garbage / "y.png").write_bytes(b"")
    with pytest.raises(DataError) as exc:
        prepare(f"folder:{garbage}", root)
    assert "none of the 2 image files" in _one_line(exc)
    with pytest.raises(DataError, match="does not exist"):
        prepare(f"folder:{tmp_path / 'missing'}", root)
    assert _only_final_dirs(root) == []  # nothing half-written


def test_failed_rebuild_keeps_the_old_cache(tmp_path):
    src = tmp_path / "imgs"
    _png(src / "a.png")
    root = tmp_path / "data"
    prepare(f"folder:{src}", root)
    (src / "a.png").unlink()
    with pytest.raises(DataError):
        prepare(f"folder:{src}", root, force=True)
    assert open_prepared(f"folder:{src}", root).n == 1
    assert len(_only_final_dirs(root)) == 1
    # the folder no longer matches the cache: opening it as it is is refused
    with pytest.raises(DataError, match="changed since it was prepared"):
        open_dataset(f"folder:{src}", root, prepare_missing=False)


def test_folder_changes_are_noticed(tmp_path):
    src = tmp_path / "imgs"
    for i in range(4):
        _png(src / f"{i}.png")
    root = tmp_path / "data"
    name = f"folder:{src}"
    assert prepare(name, root).n == 4
    assert prepare(name, root).meta["fingerprint"]["count"] == 4
    stages: list[str] = []

    def progress(stage, done, total):
        stages.append(stage)

    assert prepare(name, root, progress=progress).n == 4 and stages == []  # unchanged
    _png(src / "sub" / "new.png")
    (src / "0.png").unlink()
    (src / "1.png").unlink()
    (src / "notes.txt").write_text("not an image: no rebuild for this")
    with pytest.raises(DataError) as exc:
        open_dataset(name, root, prepare_missing=False)
    msg = _one_line(exc)
    assert "changed since it was prepared" in msg and f"bvae data prepare {name} --force" in msg
    ds = prepare(name, root, progress=progress)
    assert ds.n == 3 and stages[0] == "rebuild" and "decode" in stages
    # a rewritten file (new size / mtime) is a change too; open_dataset rebuilds when allowed
    _png(src / "2.png", size=(50, 50))
    assert open_dataset(name, root).n == 3
    assert open_dataset(name, root, prepare_missing=False).n == 3
    # caches from before fingerprints count as changed
    meta_path = root / get_spec(name).cache_name / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["fingerprint"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DataError, match="changed since"):
        open_dataset(name, root, prepare_missing=False)
    stages.clear()
    assert prepare(name, root, progress=progress).n == 3 and stages[0] == "rebuild"
    # the folder gone: one line naming it
    shutil.rmtree(src)
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(name, root, prepare_missing=False)


# --- CelebA and 3D Chairs ------------------------------------------------------------------------

def test_celeba_zip_and_folder(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    with zipfile.ZipFile(root / "celeba.zip", "w") as zf:
        for i in range(3):
            zf.writestr(f"img_align_celeba/{i + 1:06d}.jpg", _jpeg_bytes())
        zf.writestr("img_align_celeba/readme.txt", "not an image")
    ds = prepare("celeba", root)
    assert ds.n == 3 and ds.images.shape == (3, 3, 64, 64) and ds.source == "files"
    assert ds.images_at([1])[0, 1].mean() > 180  # green survives crop + resize

    root2 = tmp_path / "data2"
    (root2 / "img_align_celeba").mkdir(parents=True)
    for i in range(2):
        (root2 / "img_align_celeba" / f"{i:06d}.jpg").write_bytes(_jpeg_bytes())
    assert prepare("celeba", root2).n == 2


def test_celeba_missing_says_where(tmp_path):
    with pytest.raises(DataError) as exc:
        prepare("celeba", tmp_path)
    msg = _one_line(exc)
    assert "celeba.zip" in msg and str(tmp_path) in msg and "bvae data download celeba" in msg


def test_chairs_tar(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    with tarfile.open(root / "rendered_chairs.tar", "w") as tf:
        for model in ("m1", "m2"):
            for k in range(2):
                buf = io.BytesIO()
                Image.new("RGBA", (600, 600), (0, 0, 0, 0)).save(buf, format="PNG")
                info = tarfile.TarInfo(f"rendered_chairs/{model}/renders/image_{k:03d}.png")
                info.size = len(buf.getvalue())
                tf.addfile(info, io.BytesIO(buf.getvalue()))
        info = tarfile.TarInfo("rendered_chairs/all_chair_names.mat")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    ds = prepare("chairs", root)
    assert ds.n == 4 and ds.images.shape == (4, 3, 64, 64)
    assert ds.images_at([0]).min() == 255  # transparent renders composited on white


def test_corrupt_tar(tmp_path):
    (tmp_path / "rendered_chairs.tar").write_bytes(b"\0" * 10 + b"junk" * 300)
    with pytest.raises(DataError):
        prepare("chairs", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["rendered_chairs.tar"]


# --- dSprites npz: import, export, validation ----------------------------------------------

def test_export_npz_matches_original_format(tmp_path, mini_data_dir):
    from bvae_tui.datasets.npz import export_npz

    ds = open_dataset("dsprites-mini", mini_data_dir)
    out = export_npz(ds, tmp_path / "mini.npz")
    z = np.load(out, allow_pickle=True, encoding="latin1")
    assert sorted(z.files) == ["imgs", "latents_classes", "latents_values", "metadata"]
    assert z["imgs"].dtype == np.uint8 and z["imgs"].shape == (4608, 64, 64)
    assert z["latents_values"].dtype == np.float64 and z["latents_values"].shape == (4608, 6)
    assert z["latents_classes"].dtype == np.int64
    meta = z["metadata"][()]
    assert meta["latents_names"] == dsprites.FACTOR_NAMES
    np.testing.assert_array_equal(meta["latents_sizes"], [1, 3, 3, 8, 8, 8])
    np.testing.assert_array_equal(z["imgs"], ds.images_at(np.arange(ds.n))[:, 0])
    np.testing.assert_array_equal(z["latents_classes"], ds.classes)
    assert [p.name for p in tmp_path.iterdir()] == ["mini.npz"]


def test_real_npz_import_roundtrip(tmp_path, mini_data_dir):
    from bvae_tui.datasets.npz import export_npz

    ds = open_dataset("dsprites-mini", mini_data_dir)
    path = export_npz(ds, tmp_path / "real.npz", compress=False)
    root = tmp_path / "data"
    _prepare_real_dsprites(get_spec("dsprites-mini"), root, path, None, False,
                           grid=dsprites.mini_grid())
    real = open_dataset("dsprites-mini", root, prepare_missing=False)
    assert real.source == "real"
    np.testing.assert_array_equal(np.asarray(real.images), np.asarray(ds.images))


def _put_npz(root: Path, **arrays) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / DSPRITES_FILE
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


@pytest.mark.parametrize("case, message", [
    ("garbage", "not a valid zip"),
    ("keys", "missing key(s) imgs"),
    ("shape", "expected uint8 (N, 64, 64)"),
    ("count", "4 images, expected 737280"),
    ("truncated", "dSprites npz"),
])
def test_bad_dsprites_npz(tmp_path, case, message):
    root = tmp_path / "data"
    if case == "garbage":
        root.mkdir()
        (root / DSPRITES_FILE).write_bytes(b"PK\x03\x04 this is not a zip")
    elif case == "keys":
        _put_npz(root, images=np.zeros((4, 64, 64), np.uint8))
    elif case == "shape":
        _put_npz(root, imgs=np.zeros((4, 32, 32), np.uint8), latents_values=np.zeros((4, 6)),
                 latents_classes=np.zeros((4, 6), np.int64))
    elif case == "count":
        _put_npz(root, imgs=np.zeros((4, 64, 64), np.uint8), latents_values=np.zeros((4, 6)),
                 latents_classes=np.zeros((4, 6), np.int64))
    else:
        path = _put_npz(root, imgs=np.zeros((4, 64, 64), np.uint8),
                        latents_values=np.zeros((4, 6)),
                        latents_classes=np.zeros((4, 6), np.int64))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as exc:
        prepare("dsprites", root)
    msg = _one_line(exc)
    assert message in msg and DSPRITES_FILE in msg
    assert _only_final_dirs(root) == [DSPRITES_FILE]  # no cache, no temp left


def test_truncated_cache_is_reported(tmp_path):
    prepare("dsprites-mini", tmp_path)
    images = tmp_path / "dsprites-mini" / "images.npy"
    data = images.read_bytes()
    images.write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError) as exc:
        open_dataset("dsprites-mini", tmp_path)
    msg = _one_line(exc)
    assert "damaged" in msg and "bvae data prepare dsprites-mini --force" in msg
    # the suggested fix works
    assert prepare("dsprites-mini", tmp_path, force=True).n == 4608


def test_unwritable_data_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the data dir should be")
    with pytest.raises(DataError) as exc:
        prepare("dsprites-mini", blocker / "data")
    assert "BVAE_DATA_DIR" in _one_line(exc)
    with pytest.raises(DataError):
        prepare("dsprites-mini", blocker)


def test_export_rejects_photos_and_bad_paths(tmp_path, mini_data_dir):
    from bvae_tui.datasets.npz import export_npz

    src = tmp_path / "imgs"
    _png(src / "a.png")
    photos = prepare(f"folder:{src}", tmp_path / "data")
    with pytest.raises(DataError, match="only dSprites-grid datasets"):
        export_npz(photos, tmp_path / "x.npz")
    ds = open_dataset("dsprites-mini", mini_data_dir)
    with pytest.raises(DataError, match="does not exist"):
        export_npz(ds, tmp_path / "nope" / "x.npz")
    (tmp_path / "afile").write_text("a file, not a folder")
    with pytest.raises(DataError) as exc:
        export_npz(ds, tmp_path / "afile" / "x.npz")
    msg = _one_line(exc)
    assert "afile is not a folder" in msg and "does not exist" not in msg
    with pytest.raises(DataError, match="afile is not a folder"):
        export_npz(ds, tmp_path / "afile" / "deeper" / "x.npz")


def test_real_file_replaces_procedural(tmp_path, mini_data_dir, monkeypatch):
    # A full grid is too big for a test; the flow is the same on the mini grid.
    from bvae_tui.datasets.npz import export_npz

    monkeypatch.setattr(dsprites, "full_grid", dsprites.mini_grid)
    root = tmp_path / "data"
    assert prepare("dsprites", root).source == "procedural"
    export_npz(open_dataset("dsprites-mini", mini_data_dir), root / DSPRITES_FILE)
    ds = open_dataset("dsprites", root)
    assert ds.source == "real" and ds.meta["origin"] == str(root / DSPRITES_FILE)
    assert sorted(p.name for p in root.iterdir()) == sorted([DSPRITES_FILE, "dsprites"])


def test_disk_full_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    from bvae_tui.datasets import cache

    def full(self, rows):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.NpyWriter, "append", full)
    with pytest.raises(DataError) as exc:
        prepare("dsprites-mini", tmp_path)
    assert "No space left on device" in _one_line(exc)
    assert list(tmp_path.iterdir()) == []
