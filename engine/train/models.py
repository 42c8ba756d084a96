"""The two beta-VAE architectures of REFERENCE.md for 64x64 images with 1 or 3 channels.

- ``H`` (Higgins et al. 2017): a deeper conv encoder ending in a 256-channel 1x1 map.
- ``B`` (Burgess et al. 2018): four stride-2 convs of 32 channels, then a 256-256 MLP.

Both decoders output logits (sigmoid gives pixel intensities). Weights are initialised with
Kaiming-normal and zero biases for every Linear, Conv2d *and* ConvTranspose2d: the common public
implementation forgets the transposed convolutions, leaving the decoder on PyTorch's default init.
"""

from __future__ import annotations

import torch
from torch import nn

ARCHS = ("H", "B")


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class _Unflatten(nn.Module):
    """(B, C*H*W) -> (B, C, H, W); a named module keeps the Sequential readable."""

    def __init__(self, shape: tuple[int, int, int]):
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], *self.shape)


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 4, 2, 1)  # halves the side


def _deconv(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 4, 2, 1)  # doubles the side


def _h_layers(nc: int, z: int) -> tuple[nn.Sequential, nn.Sequential]:
    relu = nn.ReLU
    encoder = nn.Sequential(
        _conv(nc, 32), relu(),     # 32x32
        _conv(32, 32), relu(),     # 16x16
        _conv(32, 64), relu(),     # 8x8
        _conv(64, 64), relu(),     # 4x4
        nn.Conv2d(64, 256, 4, 1), relu(),  # 1x1
        nn.Flatten(),
        nn.Linear(256, 2 * z),
    )
    decoder = nn.Sequential(
        nn.Linear(z, 256), relu(),
        _Unflatten((256, 1, 1)),
        nn.ConvTranspose2d(256, 64, 4), relu(),  # 4x4
        _deconv(64, 64), relu(),   # 8x8
        _deconv(64, 32), relu(),   # 16x16
        _deconv(32, 32), relu(),   # 32x32
        _deconv(32, nc),           # 64x64 logits
    )
    return encoder, decoder


def _b_layers(nc: int, z: int) -> tuple[nn.Sequential, nn.Sequential]:
    relu = nn.ReLU
    encoder = nn.Sequential(
        _conv(nc, 32), relu(),     # 32x32
        _conv(32, 32), relu(),     # 16x16
        _conv(32, 32), relu(),     # 8x8
        _conv(32, 32), relu(),     # 4x4
        nn.Flatten(),              # 512
        nn.Linear(512, 256), relu(),
        nn.Linear(256, 256), relu(),
        nn.Linear(256, 2 * z),
    )
    decoder = nn.Sequential(
        nn.Linear(z, 256), relu(),
        nn.Linear(256, 256), relu(),
        nn.Linear(256, 512), relu(),
        _Unflatten((32, 4, 4)),
        _deconv(32, 32), relu(),   # 8x8
        _deconv(32, 32), relu(),   # 16x16
        _deconv(32, 32), relu(),   # 32x32
        _deconv(32, nc),           # 64x64 logits
    )
    return encoder, decoder


class BetaVAE(nn.Module):
    """Encoder -> (mu, logvar); reparameterised sample; decoder -> logits.

    ``forward`` samples ``z = mu + eps * sigma`` in training mode and uses ``z = mu`` in eval mode,
    so reconstructions drawn from an eval-mode model are deterministic.
    """

    def __init__(self, arch: str, channels: int, z_dim: int):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown architecture {arch!r}; expected one of {ARCHS}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if z_dim < 1:
            raise ValueError(f"z_dim must be at least 1, got {z_dim}")
        self.arch, self.channels, self.z_dim = arch, channels, z_dim
        layers = _h_layers if arch == "H" else _b_layers
        self.encoder, self.decoder = layers(channels, z_dim)
        self.apply(_init_weights)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stats = self.encoder(x)
        return stats[:, : self.z_dim], stats[:, self.z_dim :]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor, return_z: bool = False) -> tuple[torch.Tensor, ...]:
        """(logits, mu, logvar), and with ``return_z`` the sample decoded too (the objectives
        that estimate the aggregate posterior need it)."""
        mu, logvar = self.encode(x)
        # Under bf16 autocast the encoder's head returns bf16: the latent statistics and the
        # sample stay float32 (and draw the same noise as a float32 run). A no-op in float32.
        mu, logvar = mu.float(), logvar.float()
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        logits = self.decode(z)
        return (logits, mu, logvar, z) if return_z else (logits, mu, logvar)


def build_model(arch: str, channels: int, z_dim: int) -> BetaVAE:
    """A freshly initialised model (seed torch's RNG first for a reproducible init)."""
    return BetaVAE(arch, channels, z_dim)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
