"""color-, noisy- and scream-dSprites (datasets/dsprites_variants.py, datasets/scream.py): pixel
statistics against disentanglement_lib's recipes, the same image for the same (seed, index) on
every path, the painting from the data root or a download from 127.0.0.1, and a few training
iterations plus every metric, a probe and the explore view on the -mini variants."""

from __future__ import annotations

import hashlib
import io
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from bvae_tui.cli.main import app
from bvae_tui.datasets import dsprites_variants as dv
from bvae_tui.datasets import scream
from bvae_tui.datasets.download import download_dataset
from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.loader import check_available, dataset_status
from bvae_tui.datasets.prepare import open_dataset
from bvae_tui.datasets.registry import dataset_names, get_spec
from bvae_tui.datasets.tensors import DeviceImages
from tests.metric_params import tiny_metric_params
from tests.test_download import _Server

KINDS = ("color", "noisy", "scream")
TINY = tiny_metric_params(16, 100, 50, 300, 10)


def painting(width: int = 160, height: int = 120, quality: int = 92) -> bytes:
    """A JPEG standing in for The Scream: a colour gradient with seeded noise (so that its
    patches differ from place to place, and it is a few tens of KB)."""
    rng = np.random.RandomState(7)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], -1)
    img = np.clip(img + rng.randint(-40, 40, size=img.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(img).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def _root_with_mini(tmp_path, mini_data_dir, with_scream: bool = True):
    """A data root holding a copy of the prepared dsprites-mini cache (and the painting)."""
    root = tmp_path / "data"
    shutil.copytree(mini_data_dir / "dsprites-mini", root / "dsprites-mini")
    if with_scream:
        (root / scream.SCREAM_FILE).write_bytes(painting())
    return root


@pytest.fixture(scope="module")
def root(tmp_path_factory, mini_data_dir):
    return _root_with_mini(tmp_path_factory.mktemp("variants"), mini_data_dir)


@pytest.fixture(scope="module")
def sample(mini):
    """Every 37th image of dsprites-mini: all shapes, scales, angles and positions."""
    idx = np.arange(0, mini.n, 37, dtype=np.int64)
    return idx, mini.images_at(idx)[:, 0].astype(bool)  # (M, 64, 64) sprite masks


def test_registry_has_each_variant_over_both_grids():
    for kind in KINDS:
        for base in ("dsprites", "dsprites-mini"):
            spec = get_spec(f"{kind}-{base}")
            assert spec.name in dataset_names()
            assert (spec.channels, spec.recon, spec.binary) == (3, "bernoulli", False)
            assert spec.factor_sizes == get_spec(base).factor_sizes
            assert spec.factor_names == get_spec(base).factor_names
            assert spec.cache_name == base  # no cache of its own


def test_color_sprite_in_one_colour_per_image_on_black(root, sample):
    idx, mask = sample
    ds = open_dataset("color-dsprites-mini", root, prepare_missing=False)
    assert (ds.channels, ds.binary, ds.n) == (3, False, 4608)
    x = ds.float_images_at(idx)
    assert x.shape == (len(idx), 3, 64, 64) and x.dtype == np.float32
    m = np.broadcast_to(mask[:, None], x.shape)
    assert (x[~m] == 0).all()  # black background
    sprite = x[m].reshape(-1)
    assert sprite.min() >= 0.5 and sprite.max() <= 1.0
    colours = np.stack([x[i][:, mask[i]][:, 0] for i in range(len(idx))])  # (M, 3)
    for i in range(len(idx)):  # one colour over the whole sprite
        assert (x[i][:, mask[i]] == colours[i][:, None]).all()
    # Uniform in [0.5, 1] per channel, drawn independently per image and channel.
    assert abs(colours.mean() - 0.75) < 0.03 and colours.std() > 0.1
    assert len(np.unique(colours[:, 0])) > len(idx) * 0.9


def test_noisy_white_sprite_on_uniform_noise(root, sample):
    idx, mask = sample
    x = open_dataset("noisy-dsprites-mini", root, prepare_missing=False).float_images_at(idx)
    m = np.broadcast_to(mask[:, None], x.shape)
    assert (x[m] == 1.0).all()  # min(sprite + noise, 1): the sprite is white
    noise = x[~m]
    assert noise.min() >= 0.0 and noise.max() < 1.0
    assert abs(noise.mean() - 0.5) < 0.01 and abs(noise.var() - 1 / 12) < 0.005
    # Independent per pixel and channel: the channels of one pixel are not one grey.
    assert (x[:, 0][~mask] != x[:, 1][~mask]).mean() > 0.99


def test_scream_patch_shifted_and_the_sprite_inverted(root, sample):
    idx, mask = sample
    ds = open_dataset("scream-dsprites-mini", root, prepare_missing=False)
    bg = ds.variant.background
    decoded = np.asarray(Image.open(io.BytesIO(painting())).convert("RGB"), np.float32) / 255
    np.testing.assert_array_equal(bg, decoded)  # 160x120 already fits 350x274: not resized
    x = ds.float_images_at(idx)
    rows, cols, shift = (t.numpy() for t in ds.variant.scream_draws(torch.from_numpy(idx)))
    assert rows.min() >= 0 and rows.max() < 120 - 64 and cols.min() >= 0 and cols.max() < 160 - 64
    assert len(np.unique(rows)) > 20 and len(np.unique(cols)) > 20
    assert shift.min() >= 0 and shift.max() < 1
    for i, (r, c) in enumerate(zip(rows, cols, strict=True)):
        # The recipe, in numpy: (patch + shift) / 2, and 1 - that under the sprite.
        background = (bg[r:r + 64, c:c + 64] + shift[i]) / 2.0
        background[mask[i]] = 1.0 - background[mask[i]]
        np.testing.assert_allclose(x[i], background.transpose(2, 0, 1), atol=1e-6)


def test_scream_is_shrunk_to_fit_350_by_274(tmp_path):
    path = tmp_path / "scream.jpg"
    path.write_bytes(painting(700, 900))  # portrait, like the painting
    assert scream.load_background(path).shape == (274, 213, 3)  # 700 * 274 / 900 = 213.1


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_and_index_give_the_same_image_on_every_path(root, kind):
    ds = open_dataset(f"{kind}-dsprites-mini", root, prepare_missing=False)
    idx = np.array([5, 4000, 5, 999], dtype=np.int64)
    x = ds.float_images_at(idx)
    np.testing.assert_array_equal(x[0], x[2])  # the same index twice in one batch
    np.testing.assert_array_equal(ds.float_images_at([999, 5]), x[[3, 0]])  # another batch
    # The training tensor's batches (DeviceImages, here on the CPU) make the same pixels.
    data = DeviceImages(ds, "cpu")
    assert data.channels == 3 and data.cropped
    np.testing.assert_array_equal(data.batch(torch.from_numpy(idx)).numpy(), x)
    # images_at (previews, traversals): the same, rounded to 8 bits.
    np.testing.assert_array_equal(ds.images_at(idx), np.rint(x * 255).astype(np.uint8))
    np.testing.assert_array_equal(DeviceImages(ds, "cpu", crops=False).batch(
        torch.from_numpy(idx)).numpy(), x)  # the full bit-packed images: the same again
    # Another variant seed draws other colours / noise / patches for the same sprites.
    sprites = torch.zeros(len(idx), 1, 64, 64)
    sprites[:, :, :32] = 1.0  # sprite above, background below
    same = dv.Variant(kind, 3, ds.variant.background).apply(sprites, torch.from_numpy(idx))
    again = dv.Variant(kind, 3, ds.variant.background).apply(sprites, torch.from_numpy(idx))
    other = dv.Variant(kind, 4, ds.variant.background).apply(sprites, torch.from_numpy(idx))
    assert torch.equal(same, again) and not torch.equal(same, other)


def test_draws_do_not_depend_on_the_batch():
    one = dv.draw_bits(0, "noisy", torch.tensor([4]), 10)
    two = dv.draw_bits(0, "noisy", torch.tensor([3, 4]), 10)
    assert torch.equal(one[0], two[1]) and not torch.equal(two[0], two[1])
    assert not torch.equal(dv.draw_bits(0, "color", torch.tensor([4]), 10), one)
    assert int(two.min()) >= 0 and int(two.max()) < 2**32


def test_missing_painting_is_one_line_and_builds_nothing(tmp_path, mini_data_dir, runs_dir,
                                                         monkeypatch):
    root = _root_with_mini(tmp_path, mini_data_dir, with_scream=False)
    for call in (lambda: check_available("scream-dsprites-mini", root),
                 lambda: open_dataset("scream-dsprites-mini", root),
                 lambda: open_dataset("scream-dsprites", root)):
        with pytest.raises(DataError) as info:
            call()
        text = str(info.value)
        assert "\n" not in text and f"put scream.jpg (Munch's painting, a JPEG) in {root}" in text
        assert "bvae data download scream-dsprites" in text
    assert not (root / "dsprites").exists()  # the full grid was not generated first
    st = dataset_status("scream-dsprites-mini", root)
    assert not st["prepared"] and "scream.jpg" in st["problem"]
    assert st["fix"] == "bvae data download scream-dsprites-mini"
    assert dataset_status("color-dsprites-mini", root)["prepared"]  # needs no painting
    monkeypatch.setenv("BVAE_DATA_DIR", str(root))
    result = CliRunner().invoke(app, ["train", "--dataset", "scream-dsprites-mini", "--device",
                                      "cpu", "--iterations", "2"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1 and lines[0].startswith("error: ")
    assert "put scream.jpg" in lines[0] and "Traceback" not in result.output
    assert not list(runs_dir.iterdir())  # no run was created


@pytest.mark.parametrize("content, why", [
    (lambda: painting()[:3000], "too small"),
    (lambda: painting(400, 300)[:-6000], "truncated"),
    (lambda: _png(), "not a JPEG"),
    (lambda: painting(60, 200), "too small for a 64x64 patch"),
    (lambda: np.random.RandomState(2).bytes(6000), "not an image file"),
])
def test_an_unusable_painting_is_one_line(tmp_path, mini_data_dir, content, why):
    root = _root_with_mini(tmp_path, mini_data_dir, with_scream=False)
    (root / "scream.jpg").write_bytes(content())
    with pytest.raises(DataError, match=why) as info:
        open_dataset("scream-dsprites-mini", root)
    assert "\n" not in str(info.value) and "is not a usable image of The Scream" in str(info.value)
    assert "<_io" not in str(info.value)  # no Python object's repr in a user's message


def _png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.random.RandomState(1).randint(0, 255, (120, 160, 3), np.uint8)).save(
        out, format="PNG")
    return out.getvalue()


def test_disentanglement_libs_layout_is_found(tmp_path, mini_data_dir):
    root = _root_with_mini(tmp_path, mini_data_dir, with_scream=False)
    (root / "scream").mkdir()
    (root / "scream" / "scream.jpg").write_bytes(painting())
    assert open_dataset("scream-dsprites-mini", root).variant.background.shape == (120, 160, 3)


# --- the download -----------------------------------------------------------------------------

@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _download(server, root, path="/The_Scream.jpg"):
    return download_dataset("scream-dsprites-mini", root, url=server.url + path, retries=2,
                            backoff=0.0, timeout=5.0)


def _leftovers(root):
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


def test_download_checks_and_resumes(server, tmp_path):
    data = painting(400, 300)
    server.files["/The_Scream.jpg"] = data
    server.cut["/The_Scream.jpg"] = 1  # the first transfer stops half way: resumed
    got = _download(server, tmp_path)
    assert got == tmp_path / "scream.jpg" and got.read_bytes() == data
    assert any(rng for _, rng in server.requests)  # the second request asked for the rest
    assert not _leftovers(tmp_path)
    assert _download(server, tmp_path) == got and len(server.requests) == 2  # already there


def test_truncated_download_is_refused_and_not_kept(server, tmp_path):
    server.files["/The_Scream.jpg"] = painting(400, 300)[:-8000]  # served whole, cut short
    with pytest.raises(DataError, match="not a usable image of The Scream") as info:
        _download(server, tmp_path)
    assert "truncated" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "scream.jpg").exists() and not _leftovers(tmp_path)


def test_pinned_digest(server, tmp_path, monkeypatch):
    data = painting()
    server.files["/The_Scream.jpg"] = data
    monkeypatch.setenv(scream.PIN_ENV, hashlib.sha256(b"another file").hexdigest())
    with pytest.raises(DataError, match="failed its sha256 check"):
        _download(server, tmp_path)
    assert not (tmp_path / "scream.jpg").exists() and not _leftovers(tmp_path)
    monkeypatch.setenv(scream.PIN_ENV, "not-a-digest")
    with pytest.raises(DataError, match="must be a sha256"):
        _download(server, tmp_path)
    monkeypatch.setenv(scream.PIN_ENV, hashlib.sha256(data).hexdigest().upper())
    assert _download(server, tmp_path).read_bytes() == data


def test_cli_download_then_prepare(server, tmp_path, mini_data_dir, monkeypatch):
    root = _root_with_mini(tmp_path, mini_data_dir, with_scream=False)
    server.files["/The_Scream.jpg"] = painting()
    monkeypatch.setenv("BVAE_SCREAM_DSPRITES_MINI_URL", server.url + "/The_Scream.jpg")
    result = CliRunner().invoke(app, ["data", "download", "scream-dsprites-mini", "--data-dir",
                                      str(root), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "scream.jpg" in result.output and "prepared scream-dsprites-mini: 4,608" in \
        result.output
    assert (root / "scream.jpg").read_bytes() == painting()
    nothing = CliRunner().invoke(app, ["data", "download", "color-dsprites-mini", "--data-dir",
                                       str(root)])
    assert nothing.exit_code != 0 and "has nothing to download" in nothing.output


def test_data_list_and_the_tui_list_show_them(root):
    from bvae_tui.tui.widgets.dataset_select import dataset_options

    result = CliRunner().invoke(app, ["data", "list", "--json", "--data-dir", str(root)])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    for kind in KINDS:
        assert {f"{kind}-dsprites", f"{kind}-dsprites-mini"} <= set(rows)
        mini_row = rows[f"{kind}-dsprites-mini"]
        assert mini_row["prepared"] and mini_row["count"] == 4608
        assert mini_row["location"] == str((root / "dsprites-mini").resolve())  # the base's
        assert mini_row["source"] == "procedural"
    assert not rows["color-dsprites"]["prepared"]  # the full grid is not built here
    labels = {value: str(label) for label, value in dataset_options(root)}
    assert "prepared (procedural)" in labels["noisy-dsprites-mini"]
    assert "not prepared" in labels["scream-dsprites"]


# --- training, metrics, probes and the explore view on the tiny versions -----------------------

@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("kind", KINDS)
def test_trains_and_scores_with_every_metric(kind, root, runs_dir, monkeypatch):
    from bvae_tui.engine.analysis import metrics as M
    from bvae_tui.engine.analysis.evaluate import evaluate_run
    from bvae_tui.engine.analysis.explore import open_explorer
    from bvae_tui.engine.runs.store import list_runs

    monkeypatch.setenv("BVAE_DATA_DIR", str(root))
    name = f"{kind}-dsprites-mini"
    result = CliRunner().invoke(app, [
        "train", "--dataset", name, "--device", "cpu", "--batch-size", "16", "--z-dim", "3",
        "--iterations", "10", "--log-every", "5", "--probe-every", "10", "--preview-every", "0",
        "--name", kind])
    assert result.exit_code == 0, result.output
    (run,) = list_runs(runs_dir)
    assert run.status().state == "finished" and run.config.dataset == name
    state = torch.load(run.last_checkpoint, weights_only=True)
    assert state["channels"] == 3
    probes = [json.loads(line) for line in run.probes_path.read_text().splitlines()]
    assert probes and probes[-1]["iter"] == 10 and 0.0 <= probes[-1]["mig"] <= 1.0

    saved = evaluate_run(run, params=TINY, seed=1)
    assert set(saved["scores"]) == set(M.METRICS)
    assert all(0.0 <= v <= 1.0 for v in saved["scores"].values())
    assert saved["factors"] == ["shape", "scale", "orientation", "posX", "posY"]

    # The explore view's factor picker: an image by its classes, and the inverse view.
    explorer = open_explorer(run, data_dir=root)
    index = explorer.index_for({1: 2, 4: 5})
    assert explorer.classes_of(index)[1] == 2 and explorer.classes_of(index)[4] == 5
    assert explorer.image(index).shape == (3, 64, 64)
    np.testing.assert_array_equal(explorer.image(index),
                                  explorer.need_dataset().float_images_at([index])[0])
    response = explorer.respond(index, "scale")
    assert response.to_class != response.from_class


async def test_the_new_run_form_offers_and_launches_them(root, runs_dir, monkeypatch):
    import bvae_tui.engine.runs.devices
    from bvae_tui.tui.app import BvaeApp
    from bvae_tui.tui.screens.new_run import NewRunScreen
    from bvae_tui.tui.widgets.device_picker import DevicePicker
    from tests.tui_helpers import wait_for

    def no_nvml():
        raise ImportError("No module named 'pynvml'")

    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", no_nvml)
    app = BvaeApp(runs_dir, root)
    launches = []
    app.launch_run = lambda config, *a, **k: launches.append(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen), 5, "the form")
        form = app.screen
        await wait_for(pilot, lambda: form.query_one(DevicePicker).loaded, 10, "the devices")
        select = form.query_one("#f-dataset Select")
        offered = {value: str(label) for label, value in select._options}
        for kind in KINDS:
            assert "prepared (procedural)" in offered[f"{kind}-dsprites-mini"]
            assert f"{kind}-dsprites" in offered
        form.set_field("dataset", "scream-dsprites-mini")
        await pilot.pause()
        assert form.revalidate() and "dataset" not in form.errors
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: launches, 5, "the launch")
    assert launches[0].dataset == "scream-dsprites-mini"


def test_baselines_score_on_a_variant(root):
    from bvae_tui.engine.analysis.baselines import pixels_table
    from bvae_tui.engine.analysis.evaluate import evaluate_baseline

    ds = open_dataset("noisy-dsprites-mini", root, prepare_missing=False)
    pixels = pixels_table(ds)(np.array([3, 40]))
    np.testing.assert_array_equal(pixels[1], ds.float_images_at([40]).reshape(-1))  # RGB
    for name, metrics in (("pca", "factorvae,mig"), ("raw pixels", "betavae"),
                          ("untrained", "mig,dci")):
        got = evaluate_baseline(name, "noisy-dsprites-mini", data_dir=root, params=TINY,
                                metrics=metrics, device="cpu")
        assert set(got["scores"]) == set(metrics.split(","))
        assert all(0.0 <= v <= 1.0 for v in got["scores"].values())
