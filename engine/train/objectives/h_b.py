"""Objectives H (Higgins et al. 2017) and B (Burgess et al. 2018)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bvae_tui.engine.train.objectives.common import ModelOutput, Objective

if TYPE_CHECKING:
    from bvae_tui.engine.config import TrainConfig


def capacity(iteration: int, cfg: TrainConfig) -> float:
    """Objective B's target KL C at a (1-based) iteration: linear from 0 to c_max, then held."""
    return min(cfg.c_max, cfg.c_max * iteration / cfg.c_stop_iter)


class Higgins(Objective):
    """recon + beta KL; beta = 1 is the plain VAE."""

    name = "H"

    def loss(self, out: ModelOutput, iteration: int) -> dict[str, Any]:
        recon, klz, kl = self.elbo_parts(out)
        return {"loss": recon + self.cfg.beta * kl, "recon": recon, "kl": kl,
                "kl_per_latent": klz, "c": None}


class Burgess(Objective):
    """recon + gamma |KL - C|, with the capacity C raised linearly to c_max."""

    name = "B"

    def loss(self, out: ModelOutput, iteration: int) -> dict[str, Any]:
        recon, klz, kl = self.elbo_parts(out)
        c = capacity(iteration, self.cfg)
        return {"loss": recon + self.cfg.gamma * (kl - c).abs(), "recon": recon, "kl": kl,
                "kl_per_latent": klz, "c": c}
