"""FactorVAE (Kim & Mnih 2018): recon + KL + gamma_tc TC, the total correlation estimated by a
discriminator with the density-ratio trick.

The discriminator tells codes z ~ q(z) from codes whose dimensions were shuffled independently
across a batch (samples of prod_j q(z_j)); with logits (real, permuted),
TC ~= E_q(z)[logit_real - logit_permuted]. It is an MLP of 6 x 1000 units, LeakyReLU(0.2),
trained with its own Adam (lr ``disc_lr``, betas (0.5, 0.9)) after each VAE step. Every image of
the batch goes through the VAE once: the codes of the first half are its real samples, the
second half's codes, permuted, its permuted ones (an independent batch, as the paper asks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from bvae_tui.engine.errors import RunError
from bvae_tui.engine.train.adam import load_optimizer_state, make_adam
from bvae_tui.engine.train.objectives.common import ModelOutput, Objective

if TYPE_CHECKING:
    from bvae_tui.engine.config import TrainConfig

HIDDEN, LAYERS = 1000, 6
DISC_BETAS = (0.5, 0.9)


class Discriminator(nn.Module):
    """z -> two logits: (from q(z), from the dimension-permuted codes)."""

    def __init__(self, z_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        width = z_dim
        for _ in range(LAYERS):
            layers += [nn.Linear(width, HIDDEN), nn.LeakyReLU(0.2)]
            width = HIDDEN
        layers.append(nn.Linear(width, 2))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def permute_dims(z: torch.Tensor) -> torch.Tensor:
    """Each column of ``z`` (B, Z) shuffled independently across the batch (torch's RNG)."""
    order = torch.rand(z.shape, device=z.device).argsort(dim=0)
    return z.gather(0, order)


def tc_estimate(logits: torch.Tensor) -> torch.Tensor:
    """The density-ratio estimate of TC from the discriminator's logits on samples of q(z)."""
    return (logits[:, 0] - logits[:, 1]).mean()


class FactorVAE(Objective):
    name = "factor"

    def __init__(self, cfg: TrainConfig, dist: str, dataset_size: int | None = None,
                 device: str = "cpu"):
        super().__init__(cfg, dist, dataset_size, device)
        self.discriminator = Discriminator(cfg.z_dim).to(device)
        self.params = list(self.discriminator.parameters())
        self.optimizer = make_adam(self.params, device, lr=cfg.disc_lr, betas=DISC_BETAS)
        self._labels: dict[tuple[int, torch.device], torch.Tensor] = {}

    def _trainable(self, flag: bool) -> None:
        for p in self.params:
            p.requires_grad_(flag)

    def loss(self, out: ModelOutput, iteration: int) -> dict[str, Any]:
        recon, klz, kl = self.elbo_parts(out)
        # The VAE's gradient flows through the discriminator into z, not into its weights.
        self._trainable(False)
        tc = tc_estimate(self.discriminator(out.z.float()))
        return {"loss": recon + kl + self.cfg.gamma_tc * tc, "recon": recon, "kl": kl,
                "kl_per_latent": klz, "c": None, "tc": tc}

    def labels(self, half: int, device: torch.device) -> torch.Tensor:
        key = (half, device)
        if key not in self._labels:
            self._labels[key] = torch.cat((torch.zeros(half, dtype=torch.long),
                                           torch.ones(half, dtype=torch.long))).to(device)
        return self._labels[key]

    def update(self, out: ModelOutput, iteration: int) -> dict[str, torch.Tensor]:
        """One step of the discriminator: the first half's codes against the second half's,
        permuted. Returns its accuracy on them (0.5 is chance)."""
        z = out.z.detach().float()
        half = z.shape[0] // 2
        codes = torch.cat((z[:half], permute_dims(z[half:2 * half])))
        labels = self.labels(half, z.device)
        self._trainable(True)
        logits = self.discriminator(codes)
        loss = F.cross_entropy(logits, labels)  # the mean of the two halves' losses
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        accuracy = (logits.detach().argmax(1) == labels).float().mean()
        return {"disc_acc": accuracy}

    def state_dict(self) -> dict[str, Any]:
        return {"discriminator": self.discriminator.state_dict(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "discriminator" not in state or "optimizer" not in state:
            raise RunError("the checkpoint holds no discriminator for objective factor; it was "
                           "not written by a FactorVAE run: start a new run")
        self.discriminator.load_state_dict(state["discriminator"])
        load_optimizer_state(self.optimizer, state["optimizer"])
