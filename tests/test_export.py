"""`bvae export gif|png|recon`: files written where asked, their geometry, and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from bvae_tui.engine.analysis import render

Z = 4


@pytest.fixture
def run(runs_dir, env_data):
    """A run on dsprites-mini holding a real (untrained) checkpoint in the trainer's format."""
    from bvae_tui.engine.config import make_config
    from bvae_tui.engine.runs.store import create_run
    from bvae_tui.engine.train.checkpoint import save_checkpoint
    from bvae_tui.engine.train.models import build_model

    cfg = make_config(dataset="dsprites-mini", z_dim=Z, iterations=10, device="cpu")
    run = create_run(runs_dir, cfg, env_data, name="vis")
    torch.manual_seed(0)
    model = build_model("H", 1, Z)
    save_checkpoint(run.last_checkpoint, {"format": 1, "model": model.state_dict(),
                                          "iteration": 7, "arch": "H", "channels": 1,
                                          "z_dim": Z, "config": cfg.to_dict()})
    return run


def bvae(*args: str):
    from bvae_tui.cli.main import app

    return CliRunner().invoke(app, list(args))


def _path(result) -> str:
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


def test_export_gif_default_path_frames_duration_loop(run):
    out = _path(bvae("export", "gif", run.id, "--steps", "4", "--fps", "4"))
    assert out == str(run.exports_dir / "traversal-it7.gif")
    with Image.open(out) as gif:
        assert gif.n_frames == 4
        assert gif.info["loop"] == 0
        assert gif.size == (render.LABEL_W + 3 * 65 + 1, render.HEADER_H + Z * 65 + 1)
        durations = []
        for i in range(4):
            gif.seek(i)
            durations.append(gif.info["duration"])
    assert durations == [250] * 4


def test_export_png_to_chosen_path_with_images(run, tmp_path):
    target = tmp_path / "out" / "grid.png"
    out = _path(bvae("export", "png", run.id, "-o", str(target), "--images", "0,9,100",
                     "--steps", "5", "--order", "natural"))
    assert out == str(target)
    assert render.read_png_rgb(target).shape == (*render.grid_size(Z, 5, 3), 3)


def test_export_random_codes_and_recon(run, tmp_path):
    out = _path(bvae("export", "png", run.id, "--random", "--images", "0,1"))
    assert out.endswith("traversal-it7-random.png")
    assert render.read_png_rgb(out).shape == (*render.grid_size(Z, 10, 2), 3)
    out = _path(bvae("export", "recon", run.id, "-n", "5", "-o", str(tmp_path)))
    assert out == str(tmp_path / "recon-it7.png")
    assert render.read_png_rgb(out).shape == (2 * 65 + 1, 5 * 65 + 1, 3)


def test_export_api_is_deterministic(run, tmp_path):
    from bvae_tui.engine.analysis.export import export_png

    a = export_png(run, tmp_path / "a.png", steps=3)
    b = export_png(run, tmp_path / "b.png", steps=3)
    assert np.array_equal(render.read_png_rgb(a), render.read_png_rgb(b))


def _one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_error_no_checkpoint(run):
    run.last_checkpoint.unlink()
    _one_line_error(bvae("export", "gif", run.id), "no checkpoint")


def test_error_corrupt_checkpoint(run):
    run.last_checkpoint.write_bytes(b"PK\x03\x04 this is not a checkpoint" * 10)
    _one_line_error(bvae("export", "png", run.id), "corrupt")


def test_error_unwritable_output(run, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a file where a folder should be: fails even as root
    _one_line_error(bvae("export", "gif", run.id, "-o", str(blocker / "sub" / "t.gif")),
                    "choose another output")
    _one_line_error(bvae("export", "gif", run.id, "-o", str(tmp_path / "t.png")), ".gif")


def test_error_bad_options(run):
    _one_line_error(bvae("export", "gif", run.id, "--images", "a,b"), "--images")
    _one_line_error(bvae("export", "gif", run.id, "--images", "999999"), "out of range")
    _one_line_error(bvae("export", "gif", run.id, "--steps", "1"), "--steps")
    _one_line_error(bvae("export", "gif", run.id, "--fps", "0"), "--fps")
    _one_line_error(bvae("export", "png", run.id, "--order", "size"), "--order")
    _one_line_error(bvae("export", "png", "no-such-run"), "no run")


def test_export_from_chosen_checkpoint(run, tmp_path):
    import shutil

    shutil.copy(run.last_checkpoint, run.checkpoint_dir / "early.pt")
    run.last_checkpoint.write_bytes(b"damaged")  # proves the chosen file is the one read
    out = _path(bvae("export", "gif", run.id, "--checkpoint", "early.pt", "--steps", "3",
                     "-o", str(tmp_path / "early.gif")))
    with Image.open(out) as gif:
        assert gif.n_frames == 3
    _one_line_error(bvae("export", "gif", run.id, "--checkpoint", "missing.pt"), "missing.pt")
