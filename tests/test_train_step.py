"""One training step: what it returns and where an objective's own update plugs in."""

from __future__ import annotations

import pytest
import torch

from bvae_tui.engine.config import TrainConfig
from bvae_tui.engine.train import fastpath
from bvae_tui.engine.train.adam import make_optimizer
from bvae_tui.engine.train.models import build_model
from bvae_tui.engine.train.step import TrainStep

pytestmark = pytest.mark.usefixtures("one_thread")


def _step(cfg: TrainConfig, extra_updates=()) -> tuple[TrainStep, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_model(cfg.architecture, 1, cfg.z_dim)
    net = fastpath.prepare_model(model, cfg)
    opt = make_optimizer(model.parameters(), cfg, "cpu")
    return TrainStep(net, opt, cfg, "cpu", extra_updates=extra_updates), model


def _batch() -> torch.Tensor:
    return (torch.rand(4, 1, 64, 64, generator=torch.Generator().manual_seed(1)) < 0.1).float()


def test_the_step_returns_the_objectives_values_and_the_encoder_outputs():
    cfg = TrainConfig(dataset="dsprites-mini", objective="B", z_dim=3, c_max=10.0,
                      c_stop_iter=10)
    step, _ = _step(cfg)
    out = step(_batch(), 5)
    assert {"loss", "recon", "kl", "kl_per_latent", "c", "mu", "logvar"} <= set(out)
    assert out["c"] == pytest.approx(5.0)  # capacity at iteration 5 of a 10-step ramp to 10
    assert out["mu"].shape == out["logvar"].shape == (4, 3)
    assert not out["mu"].requires_grad and out["kl_per_latent"].shape == (3,)
    assert out["loss"].dim() == 0 and out["loss"].device.type == "cpu"


def test_extra_updates_run_after_the_vae_step_and_add_their_terms():
    cfg = TrainConfig(dataset="dsprites-mini", z_dim=3)
    seen = []

    def discriminator_like(x, out, iteration):
        moved = not torch.equal(before, next(model.parameters()).detach())
        seen.append((iteration, tuple(x.shape), moved, out["mu"].shape))
        return {"tc": out["kl"].detach() * 0 + iteration}

    step, model = _step(cfg, [discriminator_like])
    before = next(model.parameters()).detach().clone()
    out = step(_batch(), 7)
    assert seen == [(7, (4, 1, 64, 64), True, (4, 3))]
    assert float(out["tc"]) == 7.0 and "loss" in out
