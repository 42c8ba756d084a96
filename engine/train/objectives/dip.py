"""DIP-VAE-I and -II (Kumar et al. 2018): recon + KL + a penalty that pulls a covariance of the
codes towards the identity, lambda_od times its squared off-diagonal entries plus lambda_d times
the squared deviations of its diagonal from 1.

DIP-VAE-I penalises the covariance of the encoder means over the batch, Cov[mu(x)]; DIP-VAE-II
that of the aggregate posterior, Cov[z] = Cov[mu(x)] + E[diag(sigma^2(x))]. Covariances are the
batch's own (divided by B), as the population formula reads.
"""

from __future__ import annotations

from typing import Any

import torch

from bvae_tui.engine.train.objectives.common import ModelOutput, Objective


def covariance_of_means(mu: torch.Tensor) -> torch.Tensor:
    """Cov[mu] over the batch (divided by B): (Z, Z)."""
    centred = mu - mu.mean(0, keepdim=True)
    return centred.T @ centred / mu.shape[0]


def covariance_penalties(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of squared off-diagonal entries, sum of squared (diagonal - 1))."""
    diag = cov.diagonal()
    off = (cov.pow(2).sum() - diag.pow(2).sum())
    return off, (diag - 1).pow(2).sum()


class DipVAEI(Objective):
    name = "dip-i"

    def covariance(self, out: ModelOutput) -> torch.Tensor:
        return covariance_of_means(out.mu.float())

    def loss(self, out: ModelOutput, iteration: int) -> dict[str, Any]:
        recon, klz, kl = self.elbo_parts(out)
        od, d = covariance_penalties(self.covariance(out))
        loss = recon + kl + self.cfg.lambda_od * od + self.cfg.dip_lambda_d * d
        return {"loss": loss, "recon": recon, "kl": kl, "kl_per_latent": klz, "c": None,
                "dip_od": od, "dip_d": d}


class DipVAEII(DipVAEI):
    name = "dip-ii"

    def covariance(self, out: ModelOutput) -> torch.Tensor:
        variance = out.logvar.float().exp().mean(0)
        return covariance_of_means(out.mu.float()) + torch.diag(variance)
