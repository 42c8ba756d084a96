"""The two beta-VAE architectures of REFERENCE.md for 64x64 images with 1 or 3 channels, and
the same networks grown or shrunk by stride-2 stages for 128x128 and 32x32 images.

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
# Square image sides the networks are built for: 64 is the papers' (and every checkpoint made
# before other sizes existed); 128 adds one stride-2 stage at each end, 32 removes one.
IMAGE_SIZES = (32, 64, 128)


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


def stages_for(image_size: int) -> int:
    """Stride-2 stages between an ``image_size`` square and the 4x4 map both architectures end
    their convolutions on: 4 at 64 (the papers' networks), one more per doubling."""
    if image_size not in IMAGE_SIZES:
        sizes = ", ".join(map(str, IMAGE_SIZES))
        raise ValueError(f"image size must be one of {sizes}, got {image_size}")
    return image_size.bit_length() - 3  # log2(size / 4)


def _widths(at_64: list[int], image_size: int) -> list[int]:
    """Channel widths of the stride-2 stages, image end first: exactly ``at_64`` at 64. A bigger
    image gets more stages of the first width at the image end; a smaller one loses stages after
    the first, so the image-end stage and the widths at the 4x4 end stay as they are."""
    extra = stages_for(image_size) - len(at_64)
    if extra >= 0:
        return [at_64[0]] * extra + at_64
    return at_64[:1] + at_64[1 - extra:]


def _encoder_stages(nc: int, widths: list[int]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for cin, cout in zip([nc, *widths[:-1]], widths, strict=True):
        layers += [_conv(cin, cout), nn.ReLU()]  # halves the side
    return layers


def _decoder_stages(widths: list[int], nc: int) -> list[nn.Module]:
    """The encoder's stages mirrored, from the 4x4 map out to ``nc`` logits (no ReLU after the
    last: the decoder outputs logits)."""
    rev = widths[::-1]
    layers: list[nn.Module] = []
    for cin, cout in zip(rev, [*rev[1:], nc], strict=True):
        layers += [_deconv(cin, cout), nn.ReLU()]  # doubles the side
    return layers[:-1]


# Module order (and so every parameter name) at 64 is the one these networks always had, so the
# checkpoints of 64x64 runs load with strict=True.
def _h_layers(nc: int, z: int, image_size: int = 64) -> tuple[nn.Sequential, nn.Sequential]:
    relu = nn.ReLU
    widths = _widths([32, 32, 64, 64], image_size)  # 64: 32x32, 16x16, 8x8, 4x4
    encoder = nn.Sequential(
        *_encoder_stages(nc, widths),
        nn.Conv2d(widths[-1], 256, 4, 1), relu(),  # 1x1
        nn.Flatten(),
        nn.Linear(256, 2 * z),
    )
    decoder = nn.Sequential(
        nn.Linear(z, 256), relu(),
        _Unflatten((256, 1, 1)),
        nn.ConvTranspose2d(256, widths[-1], 4), relu(),  # 4x4
        *_decoder_stages(widths, nc),  # 64: 8x8, 16x16, 32x32, 64x64 logits
    )
    return encoder, decoder


def _b_layers(nc: int, z: int, image_size: int = 64) -> tuple[nn.Sequential, nn.Sequential]:
    relu = nn.ReLU
    widths = _widths([32, 32, 32, 32], image_size)  # 64: 32x32, 16x16, 8x8, 4x4
    flat = widths[-1] * 4 * 4  # 512 at every size: the stages always end on a 4x4 map
    encoder = nn.Sequential(
        *_encoder_stages(nc, widths),
        nn.Flatten(),
        nn.Linear(flat, 256), relu(),
        nn.Linear(256, 256), relu(),
        nn.Linear(256, 2 * z),
    )
    decoder = nn.Sequential(
        nn.Linear(z, 256), relu(),
        nn.Linear(256, 256), relu(),
        nn.Linear(256, flat), relu(),
        _Unflatten((widths[-1], 4, 4)),
        *_decoder_stages(widths, nc),  # 64: 8x8, 16x16, 32x32, 64x64 logits
    )
    return encoder, decoder


class BetaVAE(nn.Module):
    """Encoder -> (mu, logvar); reparameterised sample; decoder -> logits.

    ``forward`` samples ``z = mu + eps * sigma`` in training mode and uses ``z = mu`` in eval mode,
    so reconstructions drawn from an eval-mode model are deterministic.
    """

    def __init__(self, arch: str, channels: int, z_dim: int, image_size: int = 64):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown architecture {arch!r}; expected one of {ARCHS}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if z_dim < 1:
            raise ValueError(f"z_dim must be at least 1, got {z_dim}")
        stages_for(image_size)  # raises for a size the stages cannot reach
        self.arch, self.channels, self.z_dim = arch, channels, z_dim
        self.image_size = image_size
        layers = _h_layers if arch == "H" else _b_layers
        self.encoder, self.decoder = layers(channels, z_dim, image_size)
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


def build_model(arch: str, channels: int, z_dim: int, image_size: int = 64) -> BetaVAE:
    """A freshly initialised model for ``image_size`` squares (seed torch's RNG first for a
    reproducible init)."""
    return BetaVAE(arch, channels, z_dim, image_size)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
