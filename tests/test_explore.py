"""The explore engine (engine/analysis/explore.py) and `bvae explore`: exact equalities that hold
by construction (a set code decodes as decoding it directly, the inverse view is the difference
of the encoder means), the factor lookup, checkpoint fallbacks, and every bad input as one line.

The models are untrained (seeded weights): nothing here depends on a training trajectory.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from bvae_tui.engine.analysis import explore as ex
from bvae_tui.engine.analysis import render
from bvae_tui.engine.analysis import visualise as vis
from bvae_tui.engine.errors import ConfigError

Z = 4


def _checkpoint(run, cfg, channels: int = 1, arch: str = "H", seed: int = 0,
                iteration: int = 7, path=None) -> None:
    from bvae_tui.engine.train.checkpoint import save_checkpoint
    from bvae_tui.engine.train.models import build_model

    torch.manual_seed(seed)
    model = build_model(arch, channels, Z)
    save_checkpoint(path or run.last_checkpoint,
                    {"format": 1, "model": model.state_dict(), "iteration": iteration,
                     "arch": arch, "channels": channels, "z_dim": Z, "config": cfg.to_dict()})


@pytest.fixture(autouse=True)
def _threads_back():
    """The explorer sets the process to one torch thread (its own processes train nothing):
    the rest of the suite gets its threads back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def run(runs_dir, env_data):
    """A dsprites-mini run holding an untrained checkpoint in the trainer's format."""
    from bvae_tui.engine.config import make_config
    from bvae_tui.engine.runs.store import create_run

    cfg = make_config(dataset="dsprites-mini", z_dim=Z, iterations=10, device="cpu")
    run = create_run(runs_dir, cfg, env_data, name="ex")
    _checkpoint(run, cfg)
    return run


def bvae(*args: str):
    from bvae_tui.cli.main import app

    return CliRunner().invoke(app, list(args))


def _fails(result, *needles: str) -> str:
    """Exit code 1 and one line on stderr naming the problem; no traceback."""
    assert result.exit_code == 1, result.output
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in err, err
    return err


def _direct(run, index: int):
    """The model and the encoder mean of one image, computed here without the explorer."""
    from bvae_tui.datasets.prepare import open_dataset
    from bvae_tui.engine.train.checkpoint import load_model

    model, cfg, _ = load_model(run)
    ds = open_dataset(cfg.dataset, run.data_dir, prepare_missing=False)
    x = torch.from_numpy(ds.float_images_at([index]))
    return model, ds, vis.encode_means(model, x)[0].numpy()


# --------------------------------------------------------------------------------------------
# Engine


def test_decoding_the_same_code_twice_is_identical(run, env_data):
    explorer = ex.open_explorer(run, data_dir=env_data)
    base, source = explorer.base(10)
    code = base.copy()
    code[1] = 2.0
    first = explorer.view(10, base, code, 1, source)
    second = explorer.view(10, base, code, 1, source)
    assert np.array_equal(first.edited, second.edited)
    assert np.array_equal(first.row, second.row)
    assert first.row.shape == (ex.STEPS, 1, 64, 64)
    assert np.array_equal(first.values, render.traversal_values(3.0, ex.STEPS))
    assert not np.array_equal(first.edited, first.recon)  # the edit reached the decoder


def test_index_for_finds_the_image_with_those_classes(run, env_data):
    explorer = ex.open_explorer(run, data_dir=env_data)
    ds = explorer.dataset
    chosen = ex.parse_factors(ds, "shape=heart,scale=1,posX=7")
    index = explorer.index_for(chosen)
    classes = ds.classes[index].tolist()
    want = ex.default_classes(ds.factor_names, ds.factor_sizes)
    want[1], want[2], want[4] = 2, 1, 7
    assert classes == want
    start = explorer.classes_of(123)
    again = explorer.index_for({4: 0}, start)  # the other factors keep image 123's classes
    assert ds.classes[again].tolist() == [*start[:4], 0, start[5]]


def test_respond_is_the_difference_of_the_encoder_means(run, env_data):
    explorer = ex.open_explorer(run, data_dir=env_data)
    reply = explorer.respond(200, "posX")
    ds = explorer.dataset
    before, after = ds.classes[200].tolist(), ds.classes[reply.to_index].tolist()
    assert after[4] == before[4] + 1 and after[:4] == before[:4] and after[5] == before[5]
    _, _, mu_from = _direct(run, 200)
    _, _, mu_to = _direct(run, reply.to_index)
    assert np.allclose(reply.delta, mu_to - mu_from, atol=1e-5)
    last = explorer.index_for({4: 7}, before)  # the last class steps back
    assert explorer.respond(last, "posX").to_class == 6


def test_parse_errors_name_the_fix(run, env_data):
    explorer = ex.open_explorer(run, data_dir=env_data)
    with pytest.raises(ConfigError, match=r"z12 does not exist: this run has 4 latents"):
        ex.parse_latent("z12", Z)
    with pytest.raises(ConfigError, match="name=value"):
        ex.parse_set("z1", Z)
    with pytest.raises(ConfigError, match="finite number"):
        ex.parse_set("z1=nan", Z)
    with pytest.raises(ConfigError, match="has no factor 'hue'; its factors are color"):
        ex.parse_factors(explorer.dataset, "hue=1")
    with pytest.raises(ConfigError, match=r"scale=3 is out of range: scale has 3 classes"):
        ex.parse_factors(explorer.dataset, "scale=3")
    with pytest.raises(ConfigError, match="square, ellipse, heart"):
        ex.parse_factors(explorer.dataset, "shape=star")
    with pytest.raises(ConfigError, match="one class"):
        explorer.respond(0, "color")


def test_a_damaged_last_checkpoint_falls_back_to_prev(run, env_data):
    from bvae_tui.engine.config import make_config

    _checkpoint(run, make_config(dataset="dsprites-mini", z_dim=Z), iteration=3,
                path=run.previous_checkpoint)
    run.last_checkpoint.write_bytes(run.last_checkpoint.read_bytes()[:100])  # cut short
    explorer = ex.open_explorer(run, data_dir=env_data)
    assert explorer.loaded.path == run.previous_checkpoint and explorer.iteration == 3
    assert "last.pt is corrupt" in explorer.loaded.note
    assert explorer.checkpoint_changed()  # `R` would try last.pt again


def test_a_checkpoint_replaced_while_read_is_read_again(run, monkeypatch):
    """The first read sees a half-written file and meanwhile the trainer renames a new one in:
    read again, not the previous checkpoint and not a traceback."""
    import os

    real = ex._read_state
    calls = []

    def replaced_once(path):
        calls.append(path)
        if len(calls) == 1:
            fresh = path.with_name("fresh.pt")
            fresh.write_bytes(path.read_bytes())
            os.replace(fresh, path)  # a new inode: the stat key changes
            return None, "corrupt (cut short)"
        return real(path)

    monkeypatch.setattr(ex, "_read_state", replaced_once)
    loaded = ex.read_checkpoint(run)
    assert loaded.path == run.last_checkpoint and loaded.note is None
    assert calls == [run.last_checkpoint, run.last_checkpoint]


def test_read_checkpoint_never_takes_the_lock(run):
    """A training worker holds the run's lock: exploring must still read the checkpoint."""
    from bvae_tui.engine.runs.lock import RunLock

    with RunLock(run.path):
        assert ex.read_checkpoint(run).path == run.last_checkpoint


# --------------------------------------------------------------------------------------------
# CLI


def _tile(png, k: int) -> np.ndarray:
    """Tile ``k`` of the PNG's top row (uint8, one channel)."""
    x = render.SEP + k * (render.TILE + render.SEP)
    return png[render.SEP:render.SEP + 64, x:x + 64, 0]


def test_cli_set_equals_decoding_that_code(run, tmp_path):
    out = tmp_path / "set.png"
    result = bvae("explore", run.id, "--image", "42", "--set", "z1=1.5,z3=-2", "-o", str(out),
                  "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    model, ds, mu = _direct(run, 42)
    code = mu.copy()
    code[1], code[3] = 1.5, -2.0
    assert np.array_equal(np.asarray(data["code"], np.float32), code)
    assert np.array_equal(np.asarray(data["base"], np.float32), mu)
    assert data["latent"] == "z3" and data["files"] == [str(out)]
    png = render.read_png_rgb(out)
    direct = vis.decode(model, torch.from_numpy(code[None]))[0, 0]
    want = np.clip(np.rint(direct * 255), 0, 255).astype(np.int16)
    got = _tile(png, 2).astype(np.int16)
    # One decode in a batch of 12 against one alone: the last float bit may differ, so one
    # grey level of rounding is allowed; the edit itself moves the image by far more.
    assert np.abs(got - want).max() <= 1
    recon = np.rint(vis.decode(model, torch.from_numpy(mu[None]))[0, 0] * 255)
    assert np.abs(got - recon).max() > 1
    assert np.array_equal(_tile(png, 0), ds.images_at([42])[0, 0] * 255)  # the source


def test_cli_default_png_and_gif_into_exports(run):
    result = bvae("explore", run.id, "--factors", "shape=ellipse", "--traverse", "z2",
                  "--steps", "5")
    assert result.exit_code == 0, result.output
    path = result.stdout.strip()
    assert path.startswith(str(run.exports_dir)) and path.endswith("-z2.png")
    h, w, _ = render.read_png_rgb(path).shape
    assert w == 5 * 65 + 1 and h == 66 + render.PANEL_GAP + 66 + ex.MARK_H
    gif = run.exports_dir / "row.gif"
    assert bvae("explore", run.id, "-o", str(gif), "--steps", "4").exit_code == 0
    with Image.open(gif) as img:
        assert img.n_frames == 4


def test_cli_respond_json_matches_the_encoder(run):
    result = bvae("explore", run.id, "--image", "300", "--respond", "scale", "--json")
    assert result.exit_code == 0, result.output
    reply = json.loads(result.stdout)["respond"]
    _, _, mu_from = _direct(run, 300)
    _, _, mu_to = _direct(run, reply["to_index"])
    got = {d["latent"]: d["delta"] for d in reply["latents"]}
    assert np.allclose([got[f"z{k}"] for k in range(Z)], mu_to - mu_from, atol=1e-5)
    table = bvae("explore", run.id, "--image", "300", "--respond", "scale")
    assert table.exit_code == 0 and table.stdout.startswith("scale ")
    assert len(table.stdout.strip().splitlines()) == 1 + Z


@pytest.mark.parametrize(("args", "needles"), [
    (["--set", "z12=1"], ["z12 does not exist", "4 latents"]),
    (["--traverse", "z4"], ["z4 does not exist"]),
    (["--set", "z1"], ["name=value"]),
    (["--factors", "hue=2"], ["no factor 'hue'", "posX"]),
    (["--factors", "posX=8"], ["posX=8 is out of range", "0..7"]),
    (["--respond", "hue"], ["no factor 'hue'"]),
    (["--image", "4608"], ["out of range", "4608 images"]),
    (["--image", "1", "--factors", "shape=1"], ["not both"]),
    (["--limit", "0"], ["--limit"]),
])
def test_cli_bad_input_is_one_line(run, args, needles):
    _fails(bvae("explore", run.id, *args), *needles)


def test_cli_no_readable_checkpoint(runs_dir, env_data):
    from bvae_tui.engine.config import make_config
    from bvae_tui.engine.runs.store import create_run

    cfg = make_config(dataset="dsprites-mini", z_dim=Z, iterations=10)
    run = create_run(runs_dir, cfg, env_data, name="empty")
    _fails(bvae("explore", run.id), "no checkpoint yet", "bvae resume")
    run.checkpoint_dir.mkdir(exist_ok=True)
    run.last_checkpoint.write_bytes(b"not a zip")
    _fails(bvae("explore", run.id), "no readable checkpoint", "last.pt is corrupt",
           "prev.pt is missing", "--restart")


def test_cli_dataset_not_prepared(runs_dir, tmp_path, monkeypatch):
    from bvae_tui.engine.config import make_config
    from bvae_tui.engine.runs.store import create_run

    empty = tmp_path / "nodata"
    empty.mkdir()
    monkeypatch.setenv("BVAE_DATA_DIR", str(empty))
    cfg = make_config(dataset="dsprites-mini", z_dim=Z, iterations=10)
    run = create_run(runs_dir, cfg, empty, name="nodata")
    _checkpoint(run, cfg)
    _fails(bvae("explore", run.id), "not prepared", "bvae data prepare dsprites-mini")
    assert not (empty / "dsprites-mini").exists()  # not prepared behind the user's back


def test_cli_dataset_without_factors(runs_dir, tmp_path, monkeypatch):
    from bvae_tui.datasets.prepare import prepare
    from bvae_tui.engine.config import make_config
    from bvae_tui.engine.runs.store import create_run

    pics, data = tmp_path / "pics", tmp_path / "data"
    pics.mkdir()
    for i in range(3):
        Image.new("RGB", (64, 64), (40 * i, 0, 0)).save(pics / f"{i}.png")
    name = f"folder:{pics}"
    prepare(name, data)
    monkeypatch.setenv("BVAE_DATA_DIR", str(data))
    cfg = make_config(dataset=name, z_dim=Z, iterations=10)
    run = create_run(runs_dir, cfg, data, name="pics")
    _checkpoint(run, cfg, channels=3)
    _fails(bvae("explore", run.id, "--factors", "shape=1"), "no ground-truth factors",
           "--image")
    _fails(bvae("explore", run.id, "--respond", "posX"), "no ground-truth factors",
           "--respond")
    ok = bvae("explore", run.id, "--image", "2", "--set", "z0=1")
    assert ok.exit_code == 0, ok.output


def test_the_explorer_decodes_on_one_cpu_thread(run, env_data):
    """Two threads on a busy 2-core machine made a 12-code decode take 100+ ms instead of ~7
    (benchmarks/RESULTS.md, "Explore screen"): the explorer uses one, unless told otherwise."""
    torch.set_num_threads(2)
    ex.open_explorer(run, data_dir=env_data)
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    ex.open_explorer(run, data_dir=env_data, cpu_threads=0)
    assert torch.get_num_threads() == 2
