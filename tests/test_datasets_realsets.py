"""SmallNORB, Cars3D and MPI3D: download from 127.0.0.1, prepare, train and score, on files
written in each real format (tests/realsets_formats.py) over reduced factor grids.

The registry's factor sizes are swapped for the small grids with ``monkeypatch`` (the preparers
take the grid from the spec); the published digests for ones of the test files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from bvae_tui.cli.main import app
from bvae_tui.datasets import grid_cache, realsets_files, registry
from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.realsets_files import SourceFile
from tests import realsets_formats as fmt
from tests.metric_params import tiny_metric_params
from tests.test_download import _Server

runner = CliRunner()
SMALL = {"smallnorb": fmt.NORB_SIZES, "cars3d": fmt.CARS_SIZES, "mpi3d-toy": fmt.MPI_SIZES,
         "mpi3d-realistic": fmt.MPI_SIZES, "mpi3d-real": fmt.MPI_SIZES}
TINY = tiny_metric_params(8, 40, 20, 48, 5)


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _small(monkeypatch, name: str) -> None:
    spec = registry.get_spec(name)
    monkeypatch.setitem(registry._SPECS, name, dataclasses.replace(spec,
                                                                   factor_sizes=SMALL[name]))


def _serve(monkeypatch, server, name: str, files: dict[str, bytes], folder: str = "/d/") -> None:
    """Serve ``files`` under ``folder``, point the data set's URL there and its digests at them."""
    published = realsets_files.SOURCES[name]
    assert [f.name for f in published] == list(files)  # the official names, in their order
    for fname, data in files.items():
        server.files[folder + fname] = data
    monkeypatch.setitem(realsets_files.SOURCES, name, tuple(
        SourceFile(f.name, "sha256", hashlib.sha256(files[f.name]).hexdigest())
        for f in published))
    many = len(files) > 1
    url = server.url + folder + ("" if many else next(iter(files)))
    monkeypatch.setenv(f"BVAE_{name.upper().replace('-', '_')}_URL", url)


def _norb_files() -> tuple[dict[str, bytes], np.ndarray]:
    files, fills = fmt.smallnorb_files()
    order = [f.name for f in realsets_files.SMALLNORB_FILES]
    return {n: files[n] for n in order}, fills


def _one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def _leftovers(root) -> list[str]:
    """What a failed prepare left in the data dir besides the source files."""
    return sorted(p.name for p in root.iterdir() if not p.name.endswith((".gz", ".npz")))


# --- the published facts -------------------------------------------------------------------------

def test_registry_entries_have_the_published_files():
    for name, sizes in (("smallnorb", (5, 10, 9, 18, 6)), ("cars3d", (4, 24, 183)),
                        ("mpi3d-toy", (6, 6, 2, 3, 3, 40, 40)),
                        ("mpi3d-real", (6, 6, 2, 3, 3, 40, 40))):
        spec = registry.get_spec(name)
        assert spec.factor_sizes == sizes and spec.recon == "bernoulli" and spec.url
    assert math_prod(registry.get_spec("mpi3d-realistic").factor_sizes) == 1_036_800
    norb = [f.name for f in realsets_files.SMALLNORB_FILES]
    assert "smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat.gz" in norb and len(norb) == 6
    assert registry.get_spec("smallnorb").factor_names[1] == "instance"
    assert registry.get_spec("cars3d").factor_names == ("elevation", "azimuth", "object_type")
    for files in realsets_files.SOURCES.values():
        for f in files:
            assert len(f.digest) == {"sha256": 64, "md5": 32}[f.kind]


def math_prod(sizes) -> int:
    return int(np.prod(sizes))


# --- SmallNORB -----------------------------------------------------------------------------------

def test_smallnorb_download_prepare_factors_and_orientation(server, tmp_path, monkeypatch):
    from bvae_tui.datasets.prepare import open_dataset

    _small(monkeypatch, "smallnorb")
    files, fills = _norb_files()
    _serve(monkeypatch, server, "smallnorb", files)
    r = runner.invoke(app, ["data", "download", "smallnorb", "--data-dir", str(tmp_path), "-q"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in tmp_path.glob("*.gz")) == sorted(files)
    ds = open_dataset("smallnorb", tmp_path, prepare_missing=False)
    assert ds.n == 48 and ds.channels == 1 and ds.images.shape == (48, 1, 64, 64)
    assert ds.factor_names == realsets_files.SMALLNORB_FACTORS
    assert ds.nuisance_factors == ("instance",)
    # Each row holds the image of its grid classes, upright (marker top-left), first camera.
    np.testing.assert_array_equal(ds.images[:, 0, 63, 63], fills)
    assert (ds.images[:, 0, 0, 0] == 255).all() and (ds.images[:, 0, 63, 0] != 255).all()
    classes = ds.sample_factors(20, np.random.RandomState(0))
    np.testing.assert_array_equal(ds.classes[ds.index_of(classes)], classes)
    assert ds.meta["factor_values"][3] == [0.0, 20.0, 40.0]  # azimuth in degrees
    assert ds.meta["factor_values"][2] == [30.0, 35.0]  # elevation in degrees


def test_smallnorb_interrupted_download_resumes(server, tmp_path, monkeypatch):
    from bvae_tui.datasets.download import download_dataset

    _small(monkeypatch, "smallnorb")
    files, _ = _norb_files()
    _serve(monkeypatch, server, "smallnorb", files)
    dat = realsets_files.SMALLNORB_FILES[0].name
    server.cut["/d/" + dat] = 1
    with pytest.raises(DataError) as exc:
        download_dataset("smallnorb", tmp_path, retries=0, backoff=0.0, timeout=5.0)
    assert "run again to resume" in _one_line(exc)
    assert (tmp_path / (dat + ".part")).stat().st_size > 0
    download_dataset("smallnorb", tmp_path, retries=0, backoff=0.0, timeout=5.0)
    resumed = [rng for path, rng in server.requests if path == "/d/" + dat]
    assert resumed[0] is None and resumed[-1] is not None and resumed[-1].startswith("bytes=")
    assert (tmp_path / dat).read_bytes() == files[dat]


def test_smallnorb_checksum_failure_keeps_nothing(server, tmp_path, monkeypatch):
    from bvae_tui.datasets.download import download_dataset

    files, _ = _norb_files()
    _serve(monkeypatch, server, "smallnorb", files)
    first = next(iter(files))
    server.files["/d/" + first] = files[first][:-1] + bytes([files[first][-1] ^ 1])
    with pytest.raises(DataError) as exc:
        download_dataset("smallnorb", tmp_path, retries=0, backoff=0.0, timeout=5.0)
    assert "sha256 check" in _one_line(exc) and "not kept" in str(exc.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage, message", [
    ("truncated", "truncated"),
    ("magic", "magic number"),
    ("odd-azimuth", "odd azimuth"),
    ("duplicate", "same factor classes"),
])
def test_smallnorb_bad_files_are_refused(tmp_path, monkeypatch, damage, message):
    import gzip

    from bvae_tui.datasets.prepare import prepare

    _small(monkeypatch, "smallnorb")
    files, _ = _norb_files()
    dat, _cat, info = (f"{fmt.NORB_TRAIN}-{p}.mat.gz" for p in ("dat", "cat", "info"))
    if damage == "truncated":
        files[dat] = gzip.compress(gzip.decompress(files[dat])[:-5000])
    elif damage == "magic":
        raw = bytearray(gzip.decompress(files[dat]))
        raw[0] ^= 1
        files[dat] = gzip.compress(bytes(raw))
    else:
        raw = np.frombuffer(gzip.decompress(files[info]), dtype="<i4").copy()
        table = raw[5:].reshape(-1, 4)  # header: magic, ndim, 3 dims
        if damage == "odd-azimuth":
            table[0, 2] = 1
        else:
            table[1] = table[0]
        files[info] = gzip.compress(raw.tobytes())
    fmt.write_all(tmp_path, files)
    with pytest.raises(DataError) as exc:
        prepare("smallnorb", tmp_path)
    assert message in _one_line(exc), str(exc.value)
    assert _leftovers(tmp_path) == []  # nothing half-written that looks prepared


def test_not_enough_disk_is_said_before_writing(tmp_path, monkeypatch):
    from bvae_tui.datasets.prepare import prepare

    _small(monkeypatch, "smallnorb")
    files, _ = _norb_files()
    fmt.write_all(tmp_path, files)

    class Usage:
        free = 1000

    monkeypatch.setattr(grid_cache.shutil, "disk_usage", lambda _p: Usage)
    with pytest.raises(DataError) as exc:
        prepare("smallnorb", tmp_path)
    msg = _one_line(exc)
    assert "not enough disk for the smallnorb cache" in msg and "needs" in msg and "MB" in msg
    assert _leftovers(tmp_path) == []


def test_missing_files_say_where_to_put_them(tmp_path):
    from bvae_tui.datasets.loader import check_available

    for name, what in (("smallnorb", "smallnorb-5x"), ("cars3d", "nips2015-analogy-data"),
                       ("mpi3d-real", "mpi3d_real.npz")):
        with pytest.raises(DataError) as exc:
            check_available(name, tmp_path)
        assert what in _one_line(exc) and f"bvae data download {name}" in str(exc.value)


# --- Cars3D --------------------------------------------------------------------------------------

@pytest.mark.parametrize("listed", [True, False])
def test_cars3d_download_prepare_factors(server, tmp_path, monkeypatch, listed):
    from bvae_tui.datasets.download import download_dataset
    from bvae_tui.datasets.prepare import prepare

    _small(monkeypatch, "cars3d")
    archive, names = fmt.cars3d_archive(listed=listed)
    _serve(monkeypatch, server, "cars3d", {"nips2015-analogy-data.tar.gz": archive})
    download_dataset("cars3d", tmp_path, retries=0, backoff=0.0, timeout=5.0)
    ds = prepare("cars3d", tmp_path)
    el, az, cars = fmt.CARS_SIZES
    assert ds.n == el * az * cars and ds.images.shape == (ds.n, 3, 64, 64)
    assert ds.factor_names == ("elevation", "azimuth", "object_type")
    expected = np.array([fmt.grid_value(i) for i in range(ds.n)])
    if not listed:  # without list.txt the classes follow the sorted names: here reversed
        expected = expected.reshape(el, az, cars)[:, :, ::-1].reshape(-1)
    np.testing.assert_array_equal(ds.images[:, 0, 63, 63], expected)  # channels first
    assert (ds.images[:, 1, 63, 63] == 5).all() and (ds.images[:, 2, 63, 63] == 200).all()
    assert (ds.images[:, 0, 0, 0] == 255).all() and (ds.images[:, 1, 0, 0] == 0).all()
    assert ds.meta["cars"] == (names if listed else sorted(names))


@pytest.mark.parametrize("damage, message", [
    ("truncated", "Error"),
    ("too-big", "bytes"),
    ("fewer-cars", "2 cars, expected 3"),
    ("not-tar", "not a usable Cars3D archive"),
])
def test_cars3d_bad_archives_are_refused(tmp_path, monkeypatch, damage, message):
    from bvae_tui.datasets import cars3d
    from bvae_tui.datasets.prepare import prepare

    _small(monkeypatch, "cars3d")
    archive, _ = fmt.cars3d_archive()
    if damage == "truncated":
        archive = archive[: len(archive) // 2]
    elif damage == "too-big":
        monkeypatch.setattr(cars3d, "MAX_MEMBER", 1000)  # a car's .mat here is ~100 kB
    elif damage == "fewer-cars":
        monkeypatch.setitem(registry._SPECS, "cars3d", dataclasses.replace(
            registry.get_spec("cars3d"), factor_sizes=(2, 3, 3)))
    else:
        archive = b"plain text, not a tar"
    (tmp_path / "nips2015-analogy-data.tar.gz").write_bytes(archive)
    with pytest.raises(DataError) as exc:
        prepare("cars3d", tmp_path)
    msg = _one_line(exc)
    assert "not a usable Cars3D archive" in msg and message in msg, msg
    assert "bvae data download cars3d" in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nips2015-analogy-data.tar.gz"]


# --- MPI3D ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, compress", [("mpi3d-toy", False), ("mpi3d-real", True)])
def test_mpi3d_download_prepare_in_chunks(server, tmp_path, monkeypatch, name, compress):
    from bvae_tui.datasets import mpi3d
    from bvae_tui.datasets.download import download_dataset
    from bvae_tui.datasets.prepare import prepare

    _small(monkeypatch, name)
    monkeypatch.setattr(mpi3d, "_CHUNK", 7)  # many chunks, the last one short
    fname = realsets_files.SOURCES[name][0].name
    _serve(monkeypatch, server, name, {fname: fmt.mpi3d_npz(compress=compress)})
    server.cut["/d/" + fname] = 1  # and the download is cut once: resumed in the same call
    download_dataset(name, tmp_path, retries=2, backoff=0.0, timeout=5.0)
    ds = prepare(name, tmp_path)
    assert ds.n == math_prod(fmt.MPI_SIZES) and ds.images.shape == (ds.n, 3, 64, 64)
    assert ds.factor_names == realsets_files.MPI3D_FACTORS
    np.testing.assert_array_equal(ds.images[:, 0, 63, 63], [fmt.grid_value(i)
                                                            for i in range(ds.n)])
    assert (ds.images[:, 2, 63, 63] == 2).all() and (ds.images[:, 2, 0, 0] == 0).all()
    assert (ds.images[:, 0, 0, 0] == 255).all()
    classes = ds.sample_factors(10, np.random.RandomState(2))
    np.testing.assert_array_equal(ds.classes[ds.index_of(classes)], classes)


@pytest.mark.parametrize("damage, message", [
    ("truncated", "truncated"),
    ("wrong-shape", "expected uint8"),
    ("not-zip", "not a valid zip"),
])
def test_mpi3d_bad_files_are_refused(tmp_path, monkeypatch, damage, message):
    from bvae_tui.datasets.prepare import prepare

    _small(monkeypatch, "mpi3d-toy")
    path = tmp_path / "mpi3d_toy.npz"
    if damage == "truncated":
        path.write_bytes(fmt.mpi3d_npz(rows=20))  # the header says 48 images
    elif damage == "wrong-shape":
        path.write_bytes(fmt.mpi3d_npz(sizes=(2, 2, 1, 1, 2, 2, 2)))
    else:
        path.write_bytes(b"PK but not really")
    with pytest.raises(DataError) as exc:
        prepare("mpi3d-toy", tmp_path)
    assert message in _one_line(exc) and "bvae data download mpi3d-toy" in str(exc.value)
    assert _leftovers(tmp_path) == []


# --- everything works on them: list, train, every metric -----------------------------------------

def _prepare_small(name: str, root, monkeypatch) -> None:
    from bvae_tui.datasets.prepare import prepare

    _small(monkeypatch, name)
    if name == "smallnorb":
        fmt.write_all(root, _norb_files()[0])
    elif name == "cars3d":
        (root / "nips2015-analogy-data.tar.gz").write_bytes(fmt.cars3d_archive()[0])
    else:
        (root / realsets_files.SOURCES[name][0].name).write_bytes(fmt.mpi3d_npz())
    prepare(name, root)


def test_data_list_shows_them(tmp_path, monkeypatch):
    _prepare_small("cars3d", tmp_path, monkeypatch)
    r = runner.invoke(app, ["data", "list", "--data-dir", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in json.loads(r.output)}
    for name in realsets_files.SOURCES:
        assert name in rows
    assert rows["cars3d"]["prepared"] and rows["cars3d"]["source"] == "files"
    assert rows["cars3d"]["count"] == 12 and rows["cars3d"]["size_bytes"] > 12 * 3 * 4096
    assert not rows["smallnorb"]["prepared"] and rows["mpi3d-real"]["size_bytes"] == 0


@pytest.mark.parametrize("name", ["smallnorb", "cars3d", "mpi3d-realistic"])
def test_trains_and_scores_with_every_metric(name, tmp_path, runs_dir, monkeypatch):
    from bvae_tui.engine.analysis import metrics as M
    from bvae_tui.engine.analysis.evaluate import evaluate_baseline, evaluate_run
    from bvae_tui.engine.config import TrainConfig
    from bvae_tui.engine.runs.launch import start_run
    from bvae_tui.engine.train.trainer import train

    data = tmp_path / "data"
    data.mkdir()
    _prepare_small(name, data, monkeypatch)
    cfg = TrainConfig(dataset=name, device="cpu", iterations=2, batch_size=8, z_dim=3,
                      log_every=1, preview_every=0)
    run = start_run(cfg, runs_dir, data, detach=False)
    assert train(run) == "finished"
    result = evaluate_run(run, params=TINY, seed=1)
    assert set(result["scores"]) == set(M.METRICS)
    assert all(np.isfinite(v) for v in result["scores"].values())
    spec = registry.get_spec(name)
    scored = [n for n, s in zip(spec.factor_names, SMALL[name], strict=True)
              if s > 1 and n != "instance"]  # SmallNORB's instance is drawn, not scored
    assert list(result["factors"]) == scored
    gt = evaluate_baseline("ground-truth", name, data_dir=str(data), params=TINY,
                           metrics="mig,dci")
    assert set(gt["scores"]) == {"mig", "dci"}
    # The explore view's factor picker and --respond step through the grid's classes.
    from bvae_tui.engine.analysis import explore as ex

    explorer = ex.open_explorer(run, data_dir=data)
    steppable = [n for n, s in zip(spec.factor_names, SMALL[name], strict=True) if s > 1]
    assert explorer.steppable_factors() == steppable
    factor = steppable[-1]
    k = spec.factor_names.index(factor)
    reply = explorer.respond(5, factor)
    before, after = explorer.classes_of(5), explorer.classes_of(reply.to_index)
    assert abs(after[k] - before[k]) == 1
    assert [c for i, c in enumerate(after) if i != k] == [c for i, c in enumerate(before)
                                                          if i != k]


def test_cli_trains_and_scores_smallnorb(tmp_path, runs_dir, monkeypatch):
    """`bvae train --dataset smallnorb` then `bvae eval`: grey, one channel, Bernoulli."""
    from bvae_tui.engine.runs.store import list_runs

    data = tmp_path / "data"
    data.mkdir()
    _prepare_small("smallnorb", data, monkeypatch)
    r = runner.invoke(app, ["train", "--dataset", "smallnorb", "--data-dir", str(data),
                            "--device", "cpu", "--iterations", "2", "--batch-size", "8",
                            "--z-dim", "3", "--preview-every", "0", "--log-every", "1"])
    assert r.exit_code == 0, r.output
    (run,) = list_runs(runs_dir)
    assert run.status().state == "finished"
    from bvae_tui.engine.train.objectives.common import recon_distribution

    assert recon_distribution(run.config) == "bernoulli"  # --recon auto: the registry's choice
    r = runner.invoke(app, ["eval", run.id, "--metrics", "mig,sap", "--fast", "--json"])
    assert r.exit_code == 0, r.output
    scores = json.loads(r.output)["scores"]
    assert set(scores) == {"mig", "sap"} and all(np.isfinite(v) for v in scores.values())


def test_image_sizes_follow_the_source(tmp_path, monkeypatch):
    """Cars3D (128x128 renders) prepares at 32, 64 or 128; SmallNORB (96x96) at 32 or 64."""
    from bvae_tui.datasets.prepare import prepare

    _small(monkeypatch, "cars3d")
    _small(monkeypatch, "smallnorb")
    (tmp_path / "nips2015-analogy-data.tar.gz").write_bytes(fmt.cars3d_archive()[0])
    big = prepare("cars3d", tmp_path, image_size=128)
    assert big.images.shape == (12, 3, 128, 128) and (tmp_path / "cars3d-128px").is_dir()
    np.testing.assert_array_equal(big.images[:, 0, 127, 127],
                                  [fmt.grid_value(i) for i in range(12)])
    assert (big.images[:, 0, 0, 0] == 255).all()  # upright at every size
    fmt.write_all(tmp_path, _norb_files()[0])
    small = prepare("smallnorb", tmp_path, image_size=32)
    assert small.images.shape == (48, 1, 32, 32)
    np.testing.assert_array_equal(small.images[:, 0, 31, 31], _norb_files()[1])
    with pytest.raises(DataError) as exc:
        prepare("smallnorb", tmp_path, image_size=128)
    assert "--image-size 32 or 64" in _one_line(exc)


@pytest.mark.parametrize("part", ["cat", "info", "dat"])
def test_smallnorb_files_are_closed_when_one_is_refused(tmp_path, monkeypatch, part):
    """A bad header in any of a half's files: every file opened so far is closed (not left to
    the garbage collector), whichever one failed."""
    import gzip

    from bvae_tui.datasets.prepare import prepare

    _small(monkeypatch, "smallnorb")
    files, _ = _norb_files()
    name = f"{fmt.NORB_TRAIN}-{part}.mat.gz"
    raw = bytearray(gzip.decompress(files[name]))
    raw[0] ^= 1  # the magic number
    files[name] = gzip.compress(bytes(raw))
    fmt.write_all(tmp_path, files)
    opened = []
    real_open = gzip.open

    def tracking(*args, **kwargs):
        fh = real_open(*args, **kwargs)
        opened.append(fh)
        return fh

    monkeypatch.setattr(gzip, "open", tracking)
    with pytest.raises(DataError, match="magic number"):
        prepare("smallnorb", tmp_path)
    assert opened and all(fh.closed for fh in opened)
