"""One training step: what it returns and where an objective's own update plugs in."""

from __future__ import annotations

import pytest
import torch

from bvae_tui.engine.config import TrainConfig
from bvae_tui.engine.train import fastpath
from bvae_tui.engine.train.adam import make_optimizer
from bvae_tui.engine.train.models import build_model
from bvae_tui.engine.train.objectives.h_b import Higgins
from bvae_tui.engine.train.step import TrainStep

pytestmark = pytest.mark.usefixtures("one_thread")


def _step(cfg: TrainConfig, objective=None) -> tuple[TrainStep, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_model(cfg.architecture, 1, cfg.z_dim)
    net = fastpath.prepare_model(model, cfg)
    opt = make_optimizer(model.parameters(), cfg, "cpu")
    return TrainStep(net, opt, cfg, "cpu", objective=objective), model


def _batch() -> torch.Tensor:
    return (torch.rand(4, 1, 64, 64, generator=torch.Generator().manual_seed(1)) < 0.1).float()


def test_the_step_returns_the_objectives_values_and_the_encoder_outputs():
    cfg = TrainConfig(dataset="dsprites-mini", objective="B", z_dim=3, c_max=10.0, amp="off",
                      c_stop_iter=10)
    step, _ = _step(cfg)
    out = step(_batch(), 5)
    assert {"loss", "recon", "kl", "kl_per_latent", "c", "mu", "logvar"} <= set(out)
    assert out["c"] == pytest.approx(5.0)  # capacity at iteration 5 of a 10-step ramp to 10
    assert out["mu"].shape == out["logvar"].shape == (4, 3)
    assert not out["mu"].requires_grad and out["kl_per_latent"].shape == (3,)
    assert out["loss"].dim() == 0 and out["loss"].device.type == "cpu"


def test_an_objectives_update_runs_after_the_vae_step_and_adds_its_terms():
    cfg = TrainConfig(dataset="dsprites-mini", z_dim=3, amp="off")
    seen = []

    class WithANetwork(Higgins):
        def update(self, out, iteration):
            moved = not torch.equal(before, next(model.parameters()).detach())
            seen.append((iteration, tuple(out.x.shape), moved, out.z.shape,
                         out.z.requires_grad))
            return {"tc": out.mu.sum().detach() * 0 + iteration}

    step, model = _step(cfg, WithANetwork(cfg, "bernoulli"))
    before = next(model.parameters()).detach().clone()
    out = step(_batch(), 7)
    assert seen == [(7, (4, 1, 64, 64), True, (4, 3), True)]
    assert float(out["tc"]) == 7.0 and "loss" in out


def test_the_step_trains_a_factor_vae_discriminator_after_the_vae():
    cfg = TrainConfig(dataset="dsprites-mini", objective="factor", z_dim=3, batch_size=4,
                      amp="off")
    step, _ = _step(cfg)
    disc = step.objective.discriminator
    before = [p.detach().clone() for p in disc.parameters()]
    out = step(_batch(), 1)
    assert {"tc", "disc_acc"} <= set(out) and 0.0 <= float(out["disc_acc"]) <= 1.0
    assert all(not torch.equal(a, b) for a, b in zip(before, disc.parameters(), strict=True))
