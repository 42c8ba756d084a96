"""The H and B architectures: shapes for 1 and 3 channels, initialisation, encode/decode API."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bvae_tui.engine.train.models import build_model, count_parameters


@pytest.mark.parametrize("arch", ["H", "B"])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes(arch, channels):
    torch.manual_seed(0)
    model = build_model(arch, channels, 6)
    assert (model.z_dim, model.channels) == (6, channels)
    x = torch.rand(5, channels, 64, 64)
    logits, mu, logvar = model(x)
    assert logits.shape == x.shape
    assert mu.shape == logvar.shape == (5, 6)
    assert model.decode(torch.zeros(2, 6)).shape == (2, channels, 64, 64)
    mu2, logvar2 = model.encode(x)
    assert torch.equal(mu, mu2) and torch.equal(logvar, logvar2)


def test_architectures_follow_the_reference_layouts():
    h, b = build_model("H", 1, 10), build_model("B", 1, 10)
    h_convs = [m for m in h.encoder if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in h_convs] == [32, 32, 64, 64, 256]
    assert [m.out_features for m in h.encoder if isinstance(m, nn.Linear)] == [20]
    b_convs = [m for m in b.encoder if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in b_convs] == [32, 32, 32, 32]
    assert [m.out_features for m in b.encoder if isinstance(m, nn.Linear)] == [256, 256, 20]
    assert [m.out_features for m in b.decoder if isinstance(m, nn.Linear)] == [256, 256, 512]
    assert count_parameters(h) != count_parameters(b)


@pytest.mark.parametrize("arch", ["H", "B"])
def test_init_reaches_transposed_convolutions(arch):
    torch.manual_seed(0)
    model = build_model(arch, 1, 10)
    deconvs = [m for m in model.decoder if isinstance(m, nn.ConvTranspose2d)]
    assert deconvs
    for layer in [*deconvs, *[m for m in model.modules() if isinstance(m, (nn.Conv2d,
                                                                              nn.Linear))]]:
        assert torch.count_nonzero(layer.bias) == 0  # PyTorch's default bias is never all zero
    # Kaiming normal (ReLU gain): std = sqrt(2 / fan_in); PyTorch's default would be ~2.4x lower.
    big = max(deconvs, key=lambda m: m.weight.numel())
    fan_in = nn.init._calculate_fan_in_and_fan_out(big.weight)[0]
    assert big.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.1)


def test_eval_mode_uses_the_mean_and_train_mode_samples():
    torch.manual_seed(0)
    model = build_model("B", 1, 4)
    x = torch.rand(3, 1, 64, 64)
    model.eval()
    a, _, _ = model(x)
    b, _, _ = model(x)
    assert torch.equal(a, b)
    model.train()
    c, _, _ = model(x)
    assert not torch.equal(a, c)


def test_bad_arguments():
    with pytest.raises(ValueError):
        build_model("C", 1, 10)
    with pytest.raises(ValueError):
        build_model("H", 2, 10)
