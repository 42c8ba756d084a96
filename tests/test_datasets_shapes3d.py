"""3dshapes import from a small HDF5 file of the same layout (the real one is 255 MB)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.prepare import open_dataset
from bvae_tui.datasets.registry import SHAPES3D_FILE, get_spec

h5py = pytest.importorskip("h5py")

SIZES = (2, 1, 1, 2, 2, 3)  # a small grid; the real one is (10, 10, 10, 8, 4, 15)


def _spec():
    return dataclasses.replace(get_spec("shapes3d"), factor_sizes=SIZES)


def _write(path, shuffle=False, drop=None):
    n = int(np.prod(SIZES))
    grids = [np.linspace(0, 0.9, s) if s > 1 else np.array([0.5]) for s in SIZES]
    mesh = np.meshgrid(*grids, indexing="ij")
    labels = np.stack([m.reshape(-1) for m in mesh], axis=1).astype(np.float32)
    images = np.zeros((n, 64, 64, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(n)  # row id in the red channel of the corner pixel
    images[:, :, :, 2] = 7
    if shuffle:
        order = np.random.RandomState(0).permutation(n)
        labels, images = labels[order], images[order]
    with h5py.File(path, "w") as fh:
        if drop != "images":
            fh.create_dataset("images", data=images, chunks=(4, 64, 64, 3), compression="gzip")
        if drop != "labels":
            fh.create_dataset("labels", data=labels)


def test_import_small_grid(tmp_path):
    from bvae_tui.datasets.shapes3d import prepare_shapes3d

    _write(tmp_path / SHAPES3D_FILE)
    prepare_shapes3d(_spec(), tmp_path, tmp_path / SHAPES3D_FILE, None, False)
    ds = open_dataset("shapes3d", tmp_path, prepare_missing=False)
    assert ds.n == 24 and ds.channels == 3 and not ds.packed and ds.factor_sizes == SIZES
    assert ds.images.shape == (24, 3, 64, 64)
    np.testing.assert_array_equal(ds.images[:, 0, 0, 0], np.arange(24))  # channels-first
    assert (ds.images[:, 2] == 7).all()
    classes = ds.sample_factors(10, np.random.RandomState(1))
    np.testing.assert_array_equal(ds.images_for(classes)[:, 0, 0, 0], ds.index_of(classes))
    np.testing.assert_array_equal(ds.classes[ds.index_of(classes)], classes)


@pytest.mark.parametrize("case, message", [
    ("shuffled", "not the factor grid in order"),
    ("no-labels", "missing 'images' or 'labels'"),
    ("not-h5", "not HDF5"),
])
def test_bad_files(tmp_path, case, message):
    from bvae_tui.datasets.shapes3d import prepare_shapes3d

    path = tmp_path / SHAPES3D_FILE
    if case == "shuffled":
        _write(path, shuffle=True)
    elif case == "no-labels":
        _write(path, drop="labels")
    else:
        path.write_bytes(b"definitely not hdf5")
    with pytest.raises(DataError) as exc:
        prepare_shapes3d(_spec(), tmp_path, path, None, False)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [SHAPES3D_FILE]


def test_missing_file_says_where(tmp_path):
    from bvae_tui.datasets.prepare import prepare

    with pytest.raises(DataError, match=f"put {SHAPES3D_FILE}"):
        prepare("shapes3d", tmp_path)
