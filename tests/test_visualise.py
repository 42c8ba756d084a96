"""Traversal rendering: grid and GIF geometry, GIF timing and looping, previews, image choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bvae_tui.engine.analysis import render
from bvae_tui.engine.analysis import visualise as vis
from bvae_tui.engine.train.models import build_model

Z = 5


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("H", 1, Z).eval()


@pytest.fixture(scope="module")
def images():
    gen = torch.Generator().manual_seed(0)
    return (torch.rand(3, 1, 64, 64, generator=gen) > 0.9).float()


def test_latent_order_by_kl_and_natural():
    kl = [0.1, 2.0, 0.5, 3.0, 0.0]
    assert vis.latent_order(kl, 5, "kl") == [3, 1, 2, 0, 4]
    assert vis.latent_order(kl, 5, "natural") == [0, 1, 2, 3, 4]
    assert vis.latent_order(None, 3, "kl") == [0, 1, 2]  # no KL known: natural order


def test_traverse_sweeps_only_one_latent(model, images):
    """Each row decodes codes that differ from the start code in its own latent only."""
    mu = vis.encode_means(model, images)
    rows = [2, 0]
    trav = vis.traverse(model, mu, rows, limit=2.0, steps=4)
    assert trav.shape == (3, 2, 4, 1, 64, 64)
    assert trav.min() >= 0 and trav.max() <= 1  # sigmoid
    # Rebuild row 0 (latent 2), value 1 by hand and compare with the batched result.
    code = mu[1].clone()
    code[2] = float(render.traversal_values(2.0, 4)[1])
    by_hand = torch.sigmoid(model.decode(code[None])).detach().numpy()[0]
    np.testing.assert_allclose(trav[1, 0, 1], by_hand, atol=1e-5)


def test_png_grid_size_for_z_dim_latents(model, images, tmp_path):
    mu = vis.encode_means(model, images)
    rows = vis.latent_order(None, Z)
    trav = vis.traverse(model, mu, rows, steps=7)
    grid = render.traversal_grid(trav, rows, kl=[1.0] * Z)
    # Z rows of 64 px tiles with 1 px separators; 3 panels of 7 columns; a label column.
    assert grid.shape == (Z * 65 + 1, render.LABEL_W + 3 * (7 * 65 + 1) + 2 * render.PANEL_GAP, 3)
    assert grid.shape[:2] == render.grid_size(Z, 7, 3)
    path = render.write_png(tmp_path / "t.png", grid)
    back = render.read_png_rgb(path)
    assert back.shape == grid.shape and np.array_equal(back, grid)
    # The label column carries text: some light pixels on the dark background.
    assert (back[:, : render.LABEL_W].max(axis=2) > 150).sum() > 20
    # Separators sit between the tiles.
    assert tuple(back[0, render.LABEL_W + 10]) == render.SEP_COLOUR


def test_gif_frames_size_duration_and_loop(model, images, tmp_path):
    mu = vis.encode_means(model, images[:2])
    rows = list(range(Z))
    steps, fps = 6, 4
    trav = vis.traverse(model, mu, rows, limit=3.0, steps=steps)
    frames = render.gif_frames(trav, rows, render.traversal_values(3.0, steps).tolist())
    path = render.write_gif(tmp_path / "t.gif", frames, fps=fps)
    height = render.HEADER_H + Z * 65 + 1
    width = render.LABEL_W + 2 * 65 + 1
    with Image.open(path) as gif:
        assert gif.n_frames == steps
        assert gif.info["loop"] == 0  # loops forever
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            assert gif.size == (width, height)
            durations.append(gif.info["duration"])
    assert durations == [250] * steps  # milliseconds: 1000 / fps
    # The frames really step through the values: the first and last differ in the tiles.
    import imageio.v3 as iio

    read = iio.imread(path, index=None, plugin="pillow", mode="RGB")
    assert read.shape == (steps, height, width, 3)
    assert np.abs(read[0, render.HEADER_H:].astype(int) - read[-1, render.HEADER_H:]).mean() > 0


def test_a_lone_tile_keeps_its_border():
    """One latent from one image: the GIF frame body is one tile, still framed by separators."""
    trav = np.full((1, 1, 3, 1, 64, 64), 0.5, dtype=np.float32)  # (M, R, S, C, H, W)
    frames = render.gif_frames(trav, [0], [-1.0, 0.0, 1.0])
    assert frames.shape == (3, render.HEADER_H + 66, render.LABEL_W + 66, 3)
    body = frames[0, render.HEADER_H:, render.LABEL_W:]
    assert tuple(body[0, 0]) == tuple(body[-1, -1]) == render.SEP_COLOUR
    assert tuple(body[1, 1]) == (128, 128, 128)


def test_frame_duration_is_milliseconds():
    assert render.frame_duration_ms(5) == 200
    assert render.frame_duration_ms(10) == 100
    assert render.frame_duration_ms(1) == 1000
    assert render.frame_duration_ms(200) == 20  # GIF players ignore shorter delays


def test_write_previews_atomic_and_restores_mode(model, images, tmp_path):
    model.train()
    out = tmp_path / "previews"
    kl = [0.0, 4.0, 1.0, 0.0, 2.0]
    vis.write_previews(model, images, out / "t.png", out / "r.png", kl_per_latent=kl)
    assert model.training  # mode restored for the trainer
    model.eval()
    names = sorted(p.name for p in out.iterdir())
    assert names == ["r.png", "t.png"]  # no temp files left
    trav = render.read_png_rgb(out / "t.png")
    assert trav.shape == (*render.grid_size(Z, 10, 1), 3)
    # Rows by KL, largest first: the grid of the first image with latents 1, 4, 2, 0, 3.
    rows = [1, 4, 2, 0, 3]
    expected = render.traversal_grid(vis.traverse(model, vis.encode_means(model, images[:1]), rows),
                                  rows, kl)
    assert np.abs(trav.astype(int) - expected.astype(int)).max() <= 1
    recon = render.read_png_rgb(out / "r.png")
    assert recon.shape == (2 * 65 + 1, 3 * 65 + 1, 3)
    # Top row: the inputs themselves.
    top = recon[1:65, 1:65, 0]
    assert np.array_equal(top, (images[0, 0].numpy() * 255).astype(np.uint8))


def test_random_codes_are_seeded_standard_normal():
    a = vis.random_codes(2000, 4, seed=3)
    assert torch.equal(a, vis.random_codes(2000, 4, seed=3))
    assert not torch.equal(a, vis.random_codes(2000, 4, seed=4))
    assert abs(float(a.mean())) < 0.05 and abs(float(a.std()) - 1) < 0.05  # N(0, I), not U


def test_read_png_rgb_missing_raises_oserror(tmp_path):
    with pytest.raises(OSError):
        render.read_png_rgb(tmp_path / "nope.png")


def test_fixed_images_dsprites_one_of_each_shape(mini_data_dir):
    from bvae_tui.datasets.prepare import open_dataset

    ds = open_dataset("dsprites-mini", mini_data_dir)
    idx = vis.fixed_indices(ds)
    shape = ds.factor_names.index("shape")
    assert list(ds.classes[idx, shape]) == [0, 1, 2]  # square, ellipse, heart
    pics = vis.fixed_images(ds)
    assert pics.dtype == np.uint8 and pics.shape == (3, 1, 64, 64)
    assert set(np.unique(pics)) <= {0, 255}
    # Seeded choices beyond the shapes, and user indices checked against the size.
    more = vis.fixed_indices(ds, n=6, seed=1)
    assert len(set(more.tolist())) == 6 and np.array_equal(more, vis.fixed_indices(ds, n=6, seed=1))
    assert list(vis.fixed_indices(ds, [5, 7])) == [5, 7]
    from bvae_tui.engine.errors import RunError

    with pytest.raises(RunError, match="out of range"):
        vis.fixed_indices(ds, [ds.n])


def test_colour_model_previews_are_rgb(tmp_path):
    torch.manual_seed(1)
    colour = build_model("B", 3, 3).eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    vis.write_previews(colour, x, tmp_path / "traversal.png", tmp_path / "recon.png",
                       kl_per_latent=None, steps=4)
    recon = render.read_png_rgb(tmp_path / "recon.png")
    assert recon.shape == (2 * 65 + 1, 2 * 65 + 1, 3)
    # Colour survives: the input tile's channels match the input, not a grey copy.
    expected = np.rint(x[0].numpy() * 255).astype(np.uint8).transpose(1, 2, 0)
    assert np.array_equal(recon[1:65, 1:65], expected)
    assert render.read_png_rgb(tmp_path / "traversal.png").shape == (*render.grid_size(3, 4, 1), 3)
