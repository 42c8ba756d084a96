"""Objectives H and B, the reconstruction terms, KL per latent and the capacity schedule."""

from __future__ import annotations

import math

import pytest
import torch

from bvae_tui.engine.config import TrainConfig
from bvae_tui.engine.train.objectives import capacity, compute_loss, kl_per_latent, recon_loss


def test_kl_per_latent_matches_the_closed_form():
    mu = torch.tensor([[0.0, 1.0], [0.0, 3.0]])
    logvar = torch.tensor([[0.0, 0.0], [0.0, math.log(2.0)]])
    kl = kl_per_latent(mu, logvar)
    expected_second = (0.5 * 1.0 + 0.5 * (9 + 2 - 1 - math.log(2.0))) / 2
    assert kl.shape == (2,)
    assert kl[0].item() == pytest.approx(0.0)
    assert kl[1].item() == pytest.approx(expected_second)


def test_recon_losses_sum_over_pixels_and_average_over_the_batch():
    torch.manual_seed(0)
    logits = torch.randn(4, 1, 64, 64)
    x = (torch.rand(4, 1, 64, 64) > 0.5).float()
    p = torch.sigmoid(logits)
    bce = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum() / 4
    assert recon_loss(logits, x, "bernoulli").item() == pytest.approx(bce.item(), rel=1e-4)
    mse = ((p - x) ** 2).sum() / 4
    assert recon_loss(logits, x, "gaussian").item() == pytest.approx(mse.item(), rel=1e-5)
    with pytest.raises(ValueError):
        recon_loss(logits, x, "laplace")


def test_capacity_rises_linearly_then_holds():
    cfg = TrainConfig(objective="B", c_max=20.0, c_stop_iter=100)
    assert capacity(0, cfg) == 0.0
    assert capacity(50, cfg) == pytest.approx(10.0)
    assert capacity(100, cfg) == pytest.approx(20.0)
    assert capacity(10_000, cfg) == pytest.approx(20.0)


def _batch():
    torch.manual_seed(1)
    x = (torch.rand(8, 1, 64, 64) > 0.5).float()
    return torch.randn(8, 1, 64, 64), x, torch.randn(8, 5), torch.randn(8, 5) * 0.1


def test_objective_h():
    logits, x, mu, logvar = _batch()
    cfg = TrainConfig(dataset="dsprites", objective="H", beta=4.0)
    out = compute_loss(cfg, logits, x, mu, logvar, iteration=10)
    assert out["c"] is None
    assert out["kl"].item() == pytest.approx(out["kl_per_latent"].sum().item())
    assert out["recon"].item() == pytest.approx(recon_loss(logits, x, "bernoulli").item())
    assert out["loss"].item() == pytest.approx(out["recon"].item() + 4.0 * out["kl"].item(),
                                               rel=1e-6)


def test_objective_b_and_auto_recon_follows_the_dataset():
    logits, x, mu, logvar = _batch()
    cfg = TrainConfig(dataset="celeba", objective="B", gamma=100.0, c_max=20.0, c_stop_iter=1000)
    out = compute_loss(cfg, logits, x, mu, logvar, iteration=500)
    assert out["c"] == pytest.approx(10.0)
    assert out["recon"].item() == pytest.approx(recon_loss(logits, x, "gaussian").item())
    expected = out["recon"].item() + 100.0 * abs(out["kl"].item() - 10.0)
    assert out["loss"].item() == pytest.approx(expected, rel=1e-6)
    explicit = compute_loss(cfg.replace(recon="bernoulli"), logits, x, mu, logvar, 500)
    assert explicit["recon"].item() == pytest.approx(recon_loss(logits, x, "bernoulli").item())
