"""--image-size 32|64|128: the networks at each size (64 exactly the networks checkpoints were
made with), a cache per size, the size in the run's config, and training, traversals and the
explore view of a run at 32 and 128 on a tiny folder dataset. Bad sizes are one line each."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.image_size import sized
from bvae_tui.datasets.prepare import open_dataset, prepare
from bvae_tui.datasets.registry import get_spec
from bvae_tui.engine.analysis import render
from bvae_tui.engine.config import TrainConfig, make_config
from bvae_tui.engine.errors import ConfigError
from bvae_tui.engine.train.models import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


# --- the 64x64 networks as they were before --image-size (a frozen copy, kept here on purpose:
# the new code's 64 networks must stay these, module for module) ------------------------------

class _FrozenUnflatten(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.view(x.shape[0], *self.shape)


def _frozen_h(nc: int, z: int) -> tuple[nn.Sequential, nn.Sequential]:
    c, d, r = (lambda i, o: nn.Conv2d(i, o, 4, 2, 1)), \
        (lambda i, o: nn.ConvTranspose2d(i, o, 4, 2, 1)), nn.ReLU
    enc = nn.Sequential(c(nc, 32), r(), c(32, 32), r(), c(32, 64), r(), c(64, 64), r(),
                        nn.Conv2d(64, 256, 4, 1), r(), nn.Flatten(), nn.Linear(256, 2 * z))
    dec = nn.Sequential(nn.Linear(z, 256), r(), _FrozenUnflatten((256, 1, 1)),
                        nn.ConvTranspose2d(256, 64, 4), r(), d(64, 64), r(), d(64, 32), r(),
                        d(32, 32), r(), d(32, nc))
    return enc, dec


def _frozen_b(nc: int, z: int) -> tuple[nn.Sequential, nn.Sequential]:
    c, d, r = (lambda i, o: nn.Conv2d(i, o, 4, 2, 1)), \
        (lambda i, o: nn.ConvTranspose2d(i, o, 4, 2, 1)), nn.ReLU
    enc = nn.Sequential(c(nc, 32), r(), c(32, 32), r(), c(32, 32), r(), c(32, 32), r(),
                        nn.Flatten(), nn.Linear(512, 256), r(), nn.Linear(256, 256), r(),
                        nn.Linear(256, 2 * z))
    dec = nn.Sequential(nn.Linear(z, 256), r(), nn.Linear(256, 256), r(), nn.Linear(256, 512),
                        r(), _FrozenUnflatten((32, 4, 4)), d(32, 32), r(), d(32, 32), r(),
                        d(32, 32), r(), d(32, nc))
    return enc, dec


class _FrozenVAE(nn.Module):
    def __init__(self, arch: str, nc: int, z: int):
        super().__init__()
        self.encoder, self.decoder = (_frozen_h if arch == "H" else _frozen_b)(nc, z)


@pytest.mark.parametrize("arch", ["H", "B"])
@pytest.mark.parametrize("channels", [1, 3])
def test_the_64_networks_are_the_ones_checkpoints_were_made_with(arch, channels):
    torch.manual_seed(3)
    old = _FrozenVAE(arch, channels, 10)
    state = old.state_dict()
    new = build_model(arch, channels, 10, 64)
    assert {k: tuple(v.shape) for k, v in new.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in state.items()}
    new.load_state_dict(state, strict=True)  # a 64x64 checkpoint's weights, unchanged
    new.eval()
    x = torch.rand(2, channels, 64, 64)
    stats = old.encoder(x)
    mu, _ = new.encode(x)
    assert torch.equal(mu, stats[:, :10])
    assert torch.equal(new.decode(mu), old.decoder(mu))
    # the default size is 64: callers that never pass one build the same network
    assert build_model(arch, channels, 10).state_dict().keys() == state.keys()


@pytest.mark.parametrize("arch", ["H", "B"])
@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_at_each_size(arch, size, channels):
    torch.manual_seed(0)
    model = build_model(arch, channels, 5, size)
    x = torch.rand(3, channels, size, size)
    logits, mu, logvar = model(x)
    assert logits.shape == x.shape and mu.shape == logvar.shape == (3, 5)
    assert model.decode(torch.zeros(2, 5)).shape == (2, channels, size, size)
    # one stride-2 stage per halving down to the 4x4 map, in the encoder and the decoder
    stages = {32: 3, 64: 4, 128: 5}[size]
    strided = [m for m in model.encoder if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == stages
    assert len([m for m in model.decoder if isinstance(m, nn.ConvTranspose2d)
                and m.stride == (2, 2)]) == stages


def test_a_network_of_another_size_does_not_take_a_64_checkpoint():
    state = build_model("H", 3, 4, 64).state_dict()
    with pytest.raises(RuntimeError):
        build_model("H", 3, 4, 128).load_state_dict(state)
    with pytest.raises(ValueError, match="32, 64, 128"):
        build_model("H", 3, 4, 100)


# --- the config ------------------------------------------------------------------------------

def test_old_configs_without_image_size_read_as_64(runs_dir, env_data):
    from bvae_tui.engine.runs.store import Run, create_run

    cfg = make_config(dataset="dsprites-mini", device="cpu")
    assert cfg.image_size == 64
    old = cfg.to_dict()
    del old["image_size"]
    assert TrainConfig.from_dict(old).image_size == 64
    run = create_run(runs_dir, cfg, env_data, name="old")
    path = run.path / "config.json"
    record = json.loads(path.read_text())
    del record["config"]["image_size"]  # as written before --image-size existed
    path.write_text(json.dumps(record))
    assert Run(run.path).config.image_size == 64


def test_a_bad_size_is_one_line_naming_the_sizes():
    with pytest.raises(ConfigError, match=r"--image-size must be 32, 64 or 128; got 100"):
        make_config(image_size=100)
    assert make_config(dataset="celeba", image_size=128).image_size == 128


# --- a tiny folder dataset at each size -------------------------------------------------------

@pytest.fixture
def folder(tmp_path) -> Path:
    """24 PNGs of 150x150 (larger than 128): a gradient, and a bright square at a place of its
    own in each, so that resizing to different sizes gives different pixels."""
    src = tmp_path / "imgs"
    src.mkdir()
    ramp = np.linspace(0, 255, 150, dtype=np.uint8)
    for i in range(24):
        arr = np.zeros((150, 150, 3), np.uint8)
        arr[..., 0] = ramp[None, :]
        arr[..., 2] = ramp[:, None]
        y, x = 10 + 5 * (i % 6), 10 + 20 * (i // 6)
        arr[y:y + 30, x:x + 30] = 255
        Image.fromarray(arr).save(src / f"im{i:02d}.png")
    return src


def test_each_size_is_a_cache_of_its_own_and_64_keeps_its_place(folder, tmp_path):
    root = tmp_path / "data"
    name = f"folder:{folder}"
    at64 = prepare(name, root)
    at128 = prepare(name, root, image_size=128)
    at32 = prepare(name, root, image_size=32)
    base = get_spec(name).cache_name
    # the name (and place) 64x64 caches have always had: folder-<name>-<sha1 of the path>
    digest = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:8]
    assert base == f"folder-imgs-{digest}"
    assert [sized(get_spec(n), 64).cache_name for n in ("celeba", "chairs", "dsprites")] == [
        "celeba", "chairs", "dsprites"]
    assert sized(get_spec("celeba"), 128).title.startswith("CelebA aligned faces")
    assert "128x128" in sized(get_spec("celeba"), 128).title
    assert at64.cache_dir == root / base
    assert at128.cache_dir == root / f"{base}-128px" and at32.cache_dir == root / f"{base}-32px"
    assert sorted(p.name for p in root.iterdir()) == sorted([base, f"{base}-128px",
                                                             f"{base}-32px"])
    for ds, side in ((at32, 32), (at64, 64), (at128, 128)):
        assert ds.n == 24 and ds.image_size == side
        assert ds.images_at([0, 5]).shape == (2, 3, side, side)
        again = open_dataset(name, root, prepare_missing=False, image_size=side)
        assert again.images.shape == (24, 3, side, side)
    assert at128.meta["image_size"] == 128
    # the 128 tiles are the 150px images resized, not the 64 ones blown up
    big = at128.images_at([0])[0].astype(np.int64)
    up = np.kron(at64.images_at([0])[0].astype(np.int64), np.ones((1, 2, 2), np.int64))
    assert np.abs(big - up).max() > 8
    # a size that is not prepared yet is refused when preparing is not allowed, naming the fix
    other = tmp_path / "other"
    with pytest.raises(DataError, match=r"bvae data prepare .* --image-size 128"):
        open_dataset(name, other, prepare_missing=False, image_size=128)


@pytest.mark.parametrize("size", [128, 32])
def test_datasets_that_are_64_at_the_source_refuse_other_sizes(tmp_path, size):
    with pytest.raises(DataError) as exc:
        prepare("dsprites-mini", tmp_path / "d", image_size=size)
    msg = str(exc.value)
    assert "\n" not in msg and "64x64 at the source" in msg and "--image-size 64" in msg
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


def _folder_run(runs_dir, folder, data_dir, size, **over):
    from bvae_tui.engine.runs.store import create_run

    values = dict(dataset=f"folder:{folder}", image_size=size, device="cpu", z_dim=3,
                  batch_size=8, iterations=6, log_every=2, preview_every=3,
                  checkpoint_every=6, seed=1)
    values.update(over)
    return create_run(runs_dir, make_config(**values), data_dir, name=f"s{size}")


@pytest.mark.parametrize("size", [32, 128])
@pytest.mark.parametrize("objective", ["H", "B"])
def test_training_a_few_iterations_at_32_and_128(runs_dir, folder, tmp_path, size, objective):
    from bvae_tui.engine.train.checkpoint import load_checkpoint, load_model
    from bvae_tui.engine.train.trainer import train

    data = tmp_path / "data"
    extra = {"gamma": 10.0, "c_max": 5.0, "c_stop_iter": 5} if objective == "B" else {}
    run = _folder_run(runs_dir, folder, data, size, objective=objective, **extra)
    assert train(run) == "finished"
    rows = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == [2, 4, 6]
    assert all(np.isfinite(r["loss"]) for r in rows)
    state = load_checkpoint(run.last_checkpoint)
    assert state["image_size"] == size
    model, cfg, it = load_model(run)
    assert (it, cfg.image_size, model.image_size) == (6, size, size)
    assert model.arch == ("B" if objective == "B" else "H")
    # the previews are drawn at the run's size
    trav = render.read_png_rgb(run.path / "previews" / "traversal.png")
    assert trav.shape[0] == 3 * (size + render.SEP) + render.SEP
    # the dataset was prepared at that size only, beside where a 64 cache would be
    assert [p.name for p in data.iterdir()] == [get_spec(f"folder:{folder}").cache_name
                                                + f"-{size}px"]


@pytest.fixture
def run128(runs_dir, folder, tmp_path, monkeypatch):
    """A run at 128 on the folder holding an untrained checkpoint in the trainer's format."""
    from bvae_tui.engine.train.checkpoint import save_checkpoint

    data = tmp_path / "data"
    monkeypatch.setenv("BVAE_DATA_DIR", str(data))
    run = _folder_run(runs_dir, folder, data, 128)
    prepare(run.config.dataset, data, image_size=128)
    torch.manual_seed(0)
    model = build_model("H", 3, 3, 128)
    save_checkpoint(run.last_checkpoint, {"format": 1, "model": model.state_dict(),
                                          "iteration": 5, "arch": "H", "channels": 3,
                                          "z_dim": 3, "image_size": 128,
                                          "config": run.config.to_dict()})
    return run


def bvae(*args: str):
    from bvae_tui.cli.main import app

    return CliRunner().invoke(app, list(args))


def test_traversal_export_at_128(run128):
    result = bvae("export", "png", run128.id, "--steps", "4", "--images", "0,7")
    assert result.exit_code == 0, result.output
    png = render.read_png_rgb(result.stdout.strip().splitlines()[-1])
    assert png.shape == (*render.grid_size(3, 4, 2, tile=128), 3)
    result = bvae("export", "gif", run128.id, "--steps", "3")
    assert result.exit_code == 0, result.output
    with Image.open(result.stdout.strip().splitlines()[-1]) as gif:
        assert gif.n_frames == 3
        assert gif.size[1] == render.HEADER_H + 3 * 129 + 1


def test_the_explore_view_follows_the_run_size(run128):
    from bvae_tui.engine.analysis import explore as ex

    explorer = ex.open_explorer(run128, device="cpu")
    assert explorer.image(0).shape == (3, 128, 128)
    code, source = explorer.base(0)
    view = explorer.view(0, code, code, latent=1, source=source, steps=5)
    assert view.row.shape == (5, 3, 128, 128) and view.edited.shape == (3, 128, 128)
    row = ex.row_image(view)
    assert row.shape[1] == 5 * 129 + 1
    # the marker sits under the tile nearest the current value, as wide as a tile
    marked = np.flatnonzero((row[-1] == ex.MARK).all(axis=1))
    assert len(marked) == 128


def test_a_checkpoint_without_a_size_is_a_64_network(runs_dir, env_data):
    """Checkpoints made before --image-size existed name no size: they rebuild at 64."""
    from bvae_tui.engine.runs.store import create_run
    from bvae_tui.engine.train.checkpoint import load_model, save_checkpoint

    cfg = make_config(dataset="dsprites-mini", z_dim=3, device="cpu")
    run = create_run(runs_dir, cfg, env_data, name="old")
    torch.manual_seed(0)
    old = _FrozenVAE("H", 1, 3)
    legacy = cfg.to_dict()
    del legacy["image_size"]
    save_checkpoint(run.last_checkpoint, {"format": 1, "model": old.state_dict(),
                                          "iteration": 2, "arch": "H", "channels": 1,
                                          "z_dim": 3, "config": legacy})
    model, _, _ = load_model(run)
    assert model.image_size == 64
    x = torch.rand(1, 1, 64, 64)
    assert torch.equal(model.encode(x)[0], old.encoder(x)[:, :3])


# --- the CLI ---------------------------------------------------------------------------------

def _one_line_error(result, fragment: str) -> str:
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def test_cli_refuses_bad_sizes_in_one_line_and_creates_nothing(runs_dir, env_data):
    tiny = ["--device", "cpu", "--iterations", "2", "--batch-size", "4"]
    _one_line_error(bvae("train", "--dataset", "dsprites-mini", "--image-size", "100", *tiny),
                    "--image-size must be 32, 64 or 128; got 100")
    line = _one_line_error(bvae("train", "--dataset", "dsprites-mini", "--image-size", "128",
                                *tiny), "64x64 at the source")
    assert "--image-size 64" in line
    assert list(runs_dir.iterdir()) == []
    _one_line_error(bvae("data", "prepare", "dsprites-mini", "--image-size", "32"),
                    "64x64 at the source")
    _one_line_error(bvae("data", "prepare", "dsprites-mini", "--image-size", "100"),
                    "--image-size must be 32, 64 or 128; got 100")


def test_cli_prepares_and_lists_each_size(folder, tmp_path):
    data = str(tmp_path / "data")
    name = f"folder:{folder}"
    result = bvae("data", "prepare", name, "--image-size", "128", "--data-dir", data, "-q")
    assert result.exit_code == 0, result.output
    assert "-128px" in result.output
    result = bvae("data", "list", "--data-dir", data, "--json")
    assert result.exit_code == 0, result.output
    rows = [r for r in json.loads(result.stdout) if r["name"] == get_spec(name).name]
    assert [(r["image_size"], r["prepared"]) for r in rows] == [(64, False), (128, True)]
    assert rows[1]["count"] == 24
    table = bvae("data", "list", "--data-dir", data)
    assert table.exit_code == 0 and "(128px)" in table.output


def test_cli_trains_at_128_in_the_foreground(runs_dir, folder, tmp_path):
    data = str(tmp_path / "data")
    result = bvae("train", "--dataset", f"folder:{folder}", "--image-size", "128",
                  "--device", "cpu", "--iterations", "2", "--batch-size", "4", "--z-dim", "2",
                  "--log-every", "1", "--preview-every", "0", "--data-dir", data)
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in runs_dir.iterdir() if p.is_dir() and p.name != "sweeps"]
    saved = json.loads((run_dir / "config.json").read_text())
    cfg = saved.get("config", saved)
    assert cfg["image_size"] == 128


# --- metrics, probes and the TUI's explore screen at 128, on a folder with factors -------------

def test_probes_and_metrics_score_a_run_at_128(runs_dir, tmp_path):
    from bvae_tui.engine.analysis.evaluate import evaluate_run
    from bvae_tui.engine.train.trainer import train
    from tests.folder_helpers import make_folder

    folder, data = tmp_path / "renders", tmp_path / "data"
    make_folder(folder, ([0, 1, 2], [0, 1, 2, 3]))
    run = _folder_run(runs_dir, folder, data, 128, probe_every=2, preview_every=0)
    assert train(run) == "finished"
    probes = [json.loads(line) for line in (run.path / "probes.jsonl").read_text().splitlines()]
    assert [p["iter"] for p in probes] == [2, 4, 6]
    result = evaluate_run(run, metrics="mig,sap", fast=True, device="cpu")
    assert set(result["scores"]) >= {"mig", "sap"}
    assert all(np.isfinite(float(v)) for v in result["scores"].values()
               if isinstance(v, (int, float)))
    saved = json.loads((run.path / "eval.json").read_text())
    assert saved["iteration"] == 6


async def test_the_tui_explore_screen_draws_a_128_run(run128):
    from bvae_tui.tui.app import BvaeApp
    from bvae_tui.tui.screens.explore import ExploreScreen
    from tests.tui_helpers import wait_for

    app = BvaeApp(run128.path.parent, run128.data_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(ExploreScreen(run128.path, app.data_root))
        screen = await wait_for(pilot, lambda: isinstance(app.screen, ExploreScreen)
                                and app.screen, 10, "the explore screen")
        await wait_for(pilot, lambda: screen.view is not None and not screen.busy, 30,
                       "the first decode")
        assert screen.view.source.shape == (3, 128, 128)
        assert screen.view.row.shape[1:] == (3, 128, 128)
        assert np.array_equal(screen.view.source,
                              screen.explorer.dataset.float_images_at([screen.index])[0])


def test_baselines_score_a_folder_at_128_and_a_run_refuses_the_option(runs_dir, tmp_path,
                                                                      run128):
    from tests.folder_helpers import make_folder

    folder, data = tmp_path / "renders", str(tmp_path / "fdata")
    make_folder(folder, ([0, 1, 2], [0, 1]))
    # (pixels at 32: its 3,072 pixel "latents" score in a second, 128's 49,152 take a minute)
    for baseline, size in (("untrained", "128"), ("pixels", "32")):
        result = bvae("eval", "--baseline", baseline, "--dataset", f"folder:{folder}",
                      "--image-size", size, "--metrics", "mig", "--fast", "--device", "cpu",
                      "--data-dir", data, "--json")
        assert result.exit_code == 0, result.output
        assert np.isfinite(json.loads(result.stdout)["scores"]["mig"])
    base = get_spec(f"folder:{folder}").cache_name
    assert sorted(p.name for p in Path(data).iterdir()) == [f"{base}-128px", f"{base}-32px"]
    _one_line_error(bvae("eval", "--baseline", "pixels", "--dataset", "dsprites-mini",
                         "--image-size", "128", "--fast"), "64x64 at the source")
    _one_line_error(bvae("eval", run128.id, "--image-size", "128"), "drop --image-size")


def test_a_sweep_over_sizes_checks_each_size_before_creating_anything(runs_dir, env_data,
                                                                      folder):
    from bvae_tui.engine.runs.sweeps import control
    from bvae_tui.engine.runs.sweeps.spec import SweepSpec, parse_field_values

    mini = {"dataset": "dsprites-mini", "iterations": "2", "batch_size": "4", "device": "cpu"}
    spec = SweepSpec(values=parse_field_values({**mini, "image_size": "64,128"}))
    with pytest.raises(DataError, match="cannot be used at --image-size 128"):
        control.plan(spec)
    assert not list(runs_dir.iterdir())
    ok = SweepSpec(values=parse_field_values({**mini, "dataset": f"folder:{folder}",
                                               "image_size": "32,128"}))
    plan = control.plan(ok)
    assert sorted(cfg.image_size for _, cfg in plan.members) == [32, 128]


def test_a_stopped_128_run_resumes_from_its_checkpoint(runs_dir, folder, tmp_path):
    from bvae_tui.engine.train.trainer import train

    run = _folder_run(runs_dir, folder, tmp_path / "data", 128, checkpoint_every=100,
                      preview_every=0)
    calls = {"n": 0}

    def stop_after_3() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    assert train(run, should_stop=stop_after_3) == "stopped"
    assert train(run, resume=True) == "finished"
    rows = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["iter"] == 6


def test_compare_tells_runs_apart_by_size_and_an_old_config_is_64(runs_dir, env_data, folder):
    from bvae_tui.engine.analysis.compare import differing_fields, group_runs
    from bvae_tui.engine.analysis.compare_runs import load_runs
    from bvae_tui.engine.runs.store import Run, create_run

    name = f"folder:{folder}"
    runs = [create_run(runs_dir, make_config(dataset=name, image_size=s, device="cpu"),
                       env_data, name=f"c{s}") for s in (64, 128)]
    old = create_run(runs_dir, make_config(dataset=name, device="cpu"), env_data, name="old")
    record = json.loads((old.path / "config.json").read_text())
    del record["config"]["image_size"]  # written before --image-size existed
    (old.path / "config.json").write_text(json.dumps(record))
    loaded = load_runs([*runs, Run(old.path)])
    assert differing_fields(loaded) == ["image_size"]
    groups = group_runs(loaded, ("image_size",))
    assert sorted(len(g.runs) for g in groups) == [1, 2]  # the old run joins the 64 one


def test_not_enough_disk_for_a_128_cache_is_one_line_before_decoding(folder, tmp_path,
                                                                      monkeypatch):
    import shutil

    from bvae_tui.datasets import grid_cache

    root = tmp_path / "data"
    free = 24 * 3 * 128 * 128  # the images alone: the margin for the rest is missing
    monkeypatch.setattr(grid_cache.shutil, "disk_usage",
                        lambda path: shutil._ntuple_diskusage(10**12, 10**12 - free, free))
    with pytest.raises(DataError) as exc:
        prepare(f"folder:{folder}", root, image_size=128)
    msg = str(exc.value)
    assert "\n" not in msg and "not enough disk" in msg
    assert re.search(r"it needs [0-9.]+ [MG]B", msg)
    assert list(root.iterdir()) == []  # nothing half-written
