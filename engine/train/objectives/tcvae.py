"""beta-TCVAE (Chen et al. 2018): the KL split into index-code mutual information, total
correlation and dimension-wise KL, each with its own weight (alpha, beta, gamma_dw).

With q(z) = (1/N) sum_n q(z|x_n) the aggregate posterior over a dataset of N images,

    MI    = E[log q(z|x) - log q(z)]
    TC    = E[log q(z) - sum_j log q(z_j)]
    dimKL = E[sum_j log q(z_j) - log p(z)]

and MI + TC + dimKL is the usual KL term. log q(z_i) at the batch's own samples is estimated from
the batch, each q(z_i | x_k) weighted by :func:`log_importance_weights`; the marginals q(z_ij)
use the same weights, one dimension at a time.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from bvae_tui.engine.train.objectives.common import ModelOutput, Objective, gaussian_log_density

if TYPE_CHECKING:
    from bvae_tui.engine.config import TrainConfig


def log_importance_weights(batch: int, dataset_size: int, estimator: str = "mss",
                           device: torch.device | str | None = None) -> torch.Tensor:
    """log w[i, k], the weight of q(z_i | x_k) in the estimate of q(z_i), for a batch x_1..x_B
    drawn from a dataset of N images, z_i sampled from q(z|x_i). Shape (B, B).

    ``mss``, minibatch stratified sampling (Chen et al. 2018, appendix): x_i stands for its own
    share 1/N of the dataset; the other N - 1 images are represented by the other B - 1 members of
    the batch, with M = B - 1: one of them (the next one, cyclically) at (N - M) / (N M) and each
    of the rest at 1 / M. Each row sums to 1. It needs 2 <= B <= N (B = N = 1 is exact: weight 1).

    ``mws``, minibatch weighted sampling (same paper): every entry 1 / (N B).
    """
    n, b = int(dataset_size), int(batch)
    if n < 1 or b < 1:
        raise ValueError(f"batch ({b}) and dataset size ({n}) must be at least 1")
    if estimator == "mws":
        return torch.full((b, b), -math.log(n * b), device=device)
    if estimator != "mss":
        raise ValueError(f"unknown estimator {estimator!r}; expected mss or mws")
    if b > n:
        raise ValueError(f"a batch of {b} from {n} images: the stratified estimator needs the "
                         "batch to be at most the dataset size")
    if b == 1:
        if n > 1:
            raise ValueError("the stratified estimator needs a batch of at least 2 "
                             f"(the dataset has {n} images)")
        return torch.zeros((1, 1), device=device)
    m = b - 1
    w = torch.full((b, b), 1.0 / m, dtype=torch.float64)
    rows = torch.arange(b)
    w[rows, (rows + 1) % b] = (n - m) / (n * m)
    w[rows, rows] = 1.0 / n
    return w.log().to(dtype=torch.float32, device=device)


def kl_decomposition(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                     log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(MI, TC, dimension-wise KL) estimated on one batch, each averaged over it (nats).

    ``z``, ``mu``, ``logvar``: (B, Z); ``log_w``: (B, B) from :func:`log_importance_weights`.
    """
    # log q(z_ij | x_k) for every sample i, image k and dimension j: (B, B, Z)
    pairwise = gaussian_log_density(z.unsqueeze(1), mu.unsqueeze(0), logvar.unsqueeze(0))
    log_qz_x = gaussian_log_density(z, mu, logvar).sum(1)
    log_qz = torch.logsumexp(pairwise.sum(2) + log_w, dim=1)
    log_qz_dims = torch.logsumexp(pairwise + log_w.unsqueeze(2), dim=1).sum(1)
    log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(1)
    return ((log_qz_x - log_qz).mean(), (log_qz - log_qz_dims).mean(),
            (log_qz_dims - log_pz).mean())


class BetaTCVAE(Objective):
    """recon + alpha MI + beta TC + gamma_dw dimKL, estimated on each batch."""

    name = "tcvae"

    def __init__(self, cfg: TrainConfig, dist: str, dataset_size: int | None = None,
                 device: str = "cpu"):
        super().__init__(cfg, dist, dataset_size, device)
        if dataset_size is None:
            raise ValueError("objective tcvae needs the dataset size: its estimator weighs the "
                             "batch against the whole dataset")
        self._log_w: dict[tuple[int, torch.device], torch.Tensor] = {}

    def log_weights(self, batch: int, device: torch.device) -> torch.Tensor:
        key = (batch, device)
        if key not in self._log_w:
            self._log_w[key] = log_importance_weights(batch, int(self.dataset_size or 0),
                                                      self.cfg.tc_estimator, device)
        return self._log_w[key]

    def loss(self, out: ModelOutput, iteration: int) -> dict[str, Any]:
        recon, klz, kl = self.elbo_parts(out)
        z = out.z.float()
        log_w = self.log_weights(z.shape[0], z.device)
        mi, tc, dw_kl = kl_decomposition(z, out.mu.float(), out.logvar.float(), log_w)
        cfg = self.cfg
        loss = recon + cfg.alpha * mi + cfg.beta * tc + cfg.gamma_dw * dw_kl
        return {"loss": loss, "recon": recon, "kl": kl, "kl_per_latent": klz, "c": None,
                "mi": mi, "tc": tc, "dw_kl": dw_kl}
