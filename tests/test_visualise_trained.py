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


def _ranks(values) -> np.ndarray:
    return np.argsort(np.argsort(np.asarray(values)))


def test_traversal_change_follows_kl(trained):
    model, ds, kl = trained
    codes = vis.encode_means(model, vis.to_tensor(vis.fixed_images(ds)))
    change = [_sweep_change(model, codes, k) for k in range(Z)]
    print("KL", [round(v, 3) for v in kl], "change", [round(v, 4) for v in change])
    order = vis.latent_order(kl, Z, "kl")
    top, low = order[0], order[-1]
    assert kl[top] > 1.0, f"no latent learned anything: KL {kl}"
    # A dSprites image lights ~4% of its pixels: a moving or growing sprite changes a few %.
    assert change[top] > 0.01, (change, kl)
    assert change[low] < change[top] / 2, (change, kl)
    # Latents that carry more information move the image more: the sweeps rank like the KL
    # (Spearman rank correlation; a sweep of the wrong latent would scramble this).
    rk, rc = _ranks(kl), _ranks(change)
    rho = 1 - 6 * float(((rk - rc) ** 2).sum()) / (Z * (Z * Z - 1))
    assert rho >= 0.8, (rho, change, kl)
