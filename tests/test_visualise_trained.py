"""On a model trained briefly in the test, the traversals show what the KL says.

A β-VAE (β = 4, z_dim 6, batch 32) is trained a few hundred iterations on dsprites-mini with the
real objective. Then the latent with the highest KL must change the decoded image clearly when
swept, while a collapsed latent (KL ~ 0) must barely change it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import visualise as vis

ITERATIONS = 300
BATCH = 32
Z = 6


@pytest.fixture(scope="module")
def trained(mini_data_dir):
    from datasets.loader import open_dataset
    from engine.config import make_config
    from engine.models import build_model
    from engine.objectives import compute_loss

    ds = open_dataset("dsprites-mini", mini_data_dir)
    data = torch.from_numpy(np.asarray(ds.images_at(np.arange(ds.n))))  # uint8 0/1, 18 MB
    cfg = make_config(dataset="dsprites-mini", objective="H", beta=4.0, z_dim=Z,
                      batch_size=BATCH, lr=1e-3, iterations=ITERATIONS, device="cpu")
    torch.manual_seed(0)
    model = build_model("H", 1, Z)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(0)
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
    return model, ds, kl


def _sweep_change(model, codes, latent: int) -> float:
    """Mean absolute pixel change along a sweep of ``latent`` (each value vs the sweep's mean)."""
    trav = vis.traverse(model, codes, [latent], limit=3.0, steps=10)[:, 0]  # (M, S, C, H, W)
    return float(np.abs(trav - trav.mean(axis=1, keepdims=True)).mean())


def test_high_kl_latent_changes_image_collapsed_one_does_not(trained):
    model, ds, kl = trained
    order = vis.latent_order(kl, Z, "kl")
    top, low = order[0], order[-1]
    assert kl[top] > 1.0, f"no latent learned anything: KL {kl}"
    assert kl[low] < 0.1, f"no latent collapsed: KL {kl}"
    codes = vis.encode_means(model, vis.to_tensor(vis.fixed_images(ds)))
    change_top = _sweep_change(model, codes, top)
    change_low = _sweep_change(model, codes, low)
    # A dSprites image lights ~4% of its pixels: a moving or growing sprite changes a few %.
    assert change_top > 0.01, (change_top, kl)
    assert change_low < change_top / 10, (change_low, change_top, kl)


def test_kl_ordered_grid_labels_follow_kl(trained, tmp_path):
    model, ds, kl = trained
    rows = vis.latent_order(kl, Z, "kl")
    codes = vis.encode_means(model, vis.to_tensor(vis.fixed_images(ds)))
    grid = vis.traversal_grid(vis.traverse(model, codes, rows), rows, kl)
    assert grid.shape[:2] == vis.grid_size(Z, 10, 3)
    # Row spread of pixel values: the first (highest-KL) row varies across its columns more
    # than the last (collapsed) row.
    def row_variation(r: int) -> float:
        y = 1 + r * 65
        tiles = [grid[y:y + 64, vis.LABEL_W + 1 + c * 65: vis.LABEL_W + 65 + c * 65, 0]
                 for c in range(10)]
        return float(np.std(np.stack(tiles).astype(float), axis=0).mean())

    assert row_variation(0) > 5 * row_variation(Z - 1)
