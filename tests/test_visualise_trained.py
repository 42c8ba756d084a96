"""Traversals show what the KL says: exactly, on a model whose weights the test sets; and as
orderings with wide margins, on a model trained briefly here.

The trained model: a beta-VAE with more latents (z_dim 10) than dsprites-mini has factors of
variation (5), trained 400 iterations (batch 32) on dsprites-mini with objective B (the
``dsprites-B`` preset's gamma = 100, C rising to 4 nats over 200 iterations, lr 2e-3), so that a
few latents carry the information and the rest collapse towards the prior.

Its exact trajectory differs between CPU kinds (the last bits of a convolution differ, and a few
hundred steps amplify them), so nothing here may hold only for one trajectory: an earlier version
asserted that the quietest latent's sweep changes the image by less than 0.01, which held on the
AMD EPYC it was tuned on (0.005) and failed on an Intel Xeon (0.0108). The claims are now ratios
between the most and the least informative latents, with margins measured over seeds
(``SEED_RANGES``), and the exact claims (a latent the decoder ignores changes nothing) are made
on set weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bvae_tui.engine.analysis import render
from bvae_tui.engine.analysis import visualise as vis

ITERATIONS = 400
BATCH = 32
Z = 10
SEED = 0
# Measured (seeds 0-6, one thread, torch 2.14.1, AMD EPYC): the smallest value of each ratio over
# the seeds, and the bound asserted, over twice smaller. The AMD/Intel difference of issue 14 is
# of the same kind as a change of seed: the Intel run of seed 0 had a KL ratio of 1.124/0.033.
SEED_RANGES = {
    "KL of the top latent / KL of the bottom one": (45, 5),  # 45-162; Intel, seed 0: 34
    "sweep change of the top latent / of the bottom one": (4.9, 2),  # 4.9-7.5
    "grid: pixel spread of the first row / of the last": (4.5, 1.5),  # 4.5-7.6
}


@pytest.fixture(scope="module")
def trained(mini_data_dir):
    from bvae_tui.datasets.prepare import open_dataset
    from bvae_tui.engine.config import make_config
    from bvae_tui.engine.train.models import build_model
    from bvae_tui.engine.train.objectives import compute_loss

    ds = open_dataset("dsprites-mini", mini_data_dir)
    data = torch.from_numpy(np.asarray(ds.images_at(np.arange(ds.n))))  # uint8 0/1, 18 MB
    cfg = make_config("dsprites-B", dataset="dsprites-mini", z_dim=Z, batch_size=BATCH,
                      iterations=ITERATIONS, c_max=4.0, c_stop_iter=200, lr=2e-3,
                      device="cpu")
    assert (cfg.objective, cfg.gamma, cfg.architecture) == ("B", 100.0, "B")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convs: one thread is as fast, and repeatable
    try:
        torch.manual_seed(SEED)
        model = build_model(cfg.architecture, 1, Z)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr,
                               betas=(cfg.adam_beta1, cfg.adam_beta2))
        gen = torch.Generator().manual_seed(SEED)
        model.train()
        for it in range(1, ITERATIONS + 1):
            x = data[torch.randint(0, ds.n, (BATCH,), generator=gen)].float()
            logits, mu, logvar = model(x)
            out = compute_loss(cfg, logits, x, mu, logvar, it, dist="bernoulli")
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()
        model.eval()
        sample = torch.from_numpy(np.asarray(ds.float_images_at(np.arange(0, ds.n, 9))))
        kl = vis.kl_of_images(model, sample)
        codes = vis.encode_means(model, vis.to_tensor(vis.fixed_images(ds)))
        change = [_sweep_change(model, codes, k) for k in range(Z)]
    finally:
        torch.set_num_threads(threads)
    return model, ds, kl, change


def _sweep_change(model, codes, latent: int) -> float:
    """Mean absolute pixel change along a sweep of ``latent`` (each value vs the sweep's mean)."""
    trav = vis.traverse(model, codes, [latent], limit=3.0, steps=10)[:, 0]  # (M, S, C, H, W)
    return float(np.abs(trav - trav.mean(axis=1, keepdims=True)).mean())


def test_high_kl_latent_changes_image_more_than_the_quietest(trained):
    model, ds, kl, change = trained
    print("KL", [round(v, 3) for v in kl], "change", [round(v, 4) for v in change])
    order = vis.latent_order(kl, Z, "kl")
    top, low = order[0], order[-1]
    kl_bound = SEED_RANGES["KL of the top latent / KL of the bottom one"][1]
    change_bound = SEED_RANGES["sweep change of the top latent / of the bottom one"][1]
    assert kl[top] > kl_bound * kl[low], f"no latent stands out: KL {kl}"
    assert change[top] > change_bound * change[low], (change, kl)


def test_kl_ordered_grid_first_row_varies_more_than_last(trained):
    model, ds, kl, _ = trained
    rows = vis.latent_order(kl, Z, "kl")
    codes = vis.encode_means(model, vis.to_tensor(vis.fixed_images(ds)))
    grid = render.traversal_grid(vis.traverse(model, codes, rows), rows, kl)
    assert grid.shape[:2] == render.grid_size(Z, 10, 3)
    bound = SEED_RANGES["grid: pixel spread of the first row / of the last"][1]
    assert _grid_row_spread(grid, 0, 10) > bound * _grid_row_spread(grid, Z - 1, 10)


def _grid_row_spread(grid: np.ndarray, r: int, steps: int) -> float:
    """Pixel spread across the columns of row r in the first panel of a traversal grid."""
    y = 1 + r * 65
    tiles = [grid[y:y + 64, render.LABEL_W + 1 + c * 65: render.LABEL_W + 65 + c * 65, 0]
             for c in range(steps)]
    return float(np.std(np.stack(tiles).astype(float), axis=0).mean())


def test_set_weights_an_ignored_latent_changes_nothing(mini):
    """The exact claims, on weights the test sets: a latent encoded as the prior (KL 0) that the
    decoder ignores comes last in the KL order, and sweeping it changes no pixel; sweeping a
    latent the decoder leans on changes the image."""
    from bvae_tui.engine.train.models import build_model

    torch.manual_seed(0)
    z, dead, loud = 4, 1, 2
    model = build_model("B", 1, z).eval()
    encoder_out = [m for m in model.encoder if isinstance(m, torch.nn.Linear)][-1]
    decoder_in = [m for m in model.decoder if isinstance(m, torch.nn.Linear)][0]
    with torch.no_grad():
        for row in (dead, z + dead):  # mu = 0 and log variance = 0: the prior, KL exactly 0
            encoder_out.weight[row] = 0
            encoder_out.bias[row] = 0
        decoder_in.weight[:, dead] = 0  # the decoder never reads it
        decoder_in.weight[:, loud] *= 20
    images = vis.to_tensor(vis.fixed_images(mini))
    kl = vis.kl_of_images(model, images)
    assert kl[dead] == 0.0 and min(kl[k] for k in range(z) if k != dead) > 0
    rows = vis.latent_order(kl, z, "kl")
    assert rows[-1] == dead
    codes = vis.encode_means(model, images)
    # Zero up to float rounding (batched convolutions may round rows differently).
    assert _sweep_change(model, codes, dead) < 1e-6
    assert _sweep_change(model, codes, loud) > 0.01
    grid = render.traversal_grid(vis.traverse(model, codes, rows), rows, kl)
    assert _grid_row_spread(grid, z - 1, 10) < 0.01  # the dead latent's row: ten equal images
    assert _grid_row_spread(grid, rows.index(loud), 10) > 1
