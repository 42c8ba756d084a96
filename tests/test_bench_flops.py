"""The limit in `bvae bench`: FLOPs counted per training step against hand counts, the cache of
the count, the largest convolution, and the fraction of peak as achieved / peak.

No timed assertions: the peaks are only checked to be measured (positive), never bounded.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from bvae_tui.engine.bench import flops, report  # noqa: E402
from bvae_tui.engine.train import precision  # noqa: E402
from bvae_tui.engine.train.adam import Adam  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _conv(batch: int, cin: int, cout: int, k: int, out_side: int) -> int:
    """Forward FLOPs of a convolution: a multiply and an add per weight per output pixel."""
    return 2 * batch * cout * out_side * out_side * cin * k * k


def _deconv(batch: int, cin: int, cout: int, k: int, in_side: int) -> int:
    """Forward FLOPs of a transposed convolution: per weight per *input* pixel."""
    return 2 * batch * cin * in_side * in_side * cout * k * k


def _linear(batch: int, n_in: int, n_out: int) -> int:
    return 2 * batch * n_in * n_out


def test_counted_flops_match_a_hand_count_for_a_tiny_layer():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, 3, stride=1, padding=1)
    head = torch.nn.Linear(3 * 5 * 5, 4)
    params = [*conv.parameters(), *head.parameters()]
    opt = Adam(params, lr=1e-3)
    x = torch.randn(6, 2, 5, 5)  # the data: no gradient wanted for it

    def step() -> None:
        loss = head(torch.relu(conv(x)).flatten(1)).square().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    f_conv, f_head = _conv(6, 2, 3, 3, 5), _linear(6, 75, 4)
    # forward; backward: the conv's weight gradient (its input needs none), the head's input
    # and weight gradients (each as many FLOPs as the forward product); Adam counts no product.
    assert flops.counted_flops(step) == f_conv + f_head + f_conv + 2 * f_head
    assert f_conv == 16_200 and f_head == 3_600  # the hand count itself, spelled out


def test_arch_b_step_matches_the_layer_by_layer_count():
    b = 1  # per image
    encoder = [_conv(b, 1, 32, 4, 32), _conv(b, 32, 32, 4, 16), _conv(b, 32, 32, 4, 8),
               _conv(b, 32, 32, 4, 4), _linear(b, 512, 256), _linear(b, 256, 256),
               _linear(b, 256, 20)]
    decoder = [_linear(b, 10, 256), _linear(b, 256, 256), _linear(b, 256, 512),
               _deconv(b, 32, 32, 4, 4), _deconv(b, 32, 32, 4, 8), _deconv(b, 32, 32, 4, 16),
               _deconv(b, 32, 1, 4, 32)]
    forward = sum(encoder) + sum(decoder)
    # backward: input and weight gradients of every layer but the first (its input is data)
    want = forward + 2 * forward - encoder[0]
    assert flops.count_step_flops("B", "H", channels=1, z_dim=10, batch=4) == want
    assert want == 73_708_544


def test_the_count_does_not_depend_on_the_batch_or_the_precision_path():
    h8 = flops.count_step_flops("H", batch=8)
    assert flops.count_step_flops("H", batch=4) == h8
    # FactorVAE trains its discriminator in the same step: more FLOPs than plain H
    assert flops.count_step_flops("H", "factor", batch=8) > h8


def test_the_count_is_cached_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv(precision.CACHE_ENV, str(tmp_path / "cache"))
    path = flops.flops_cache_path()
    assert path == tmp_path / "cache" / flops.FLOPS_CACHE_FILE
    first = flops.step_flops_per_image("B", batch=4)
    assert first == flops.count_step_flops("B", batch=4)
    cache = json.loads(path.read_text())
    [(key, value)] = cache.items()
    assert key.startswith("B/H/c1/z10/b4/torch ") and value == first
    # A later call takes the cached count (it does not count again): a value put there shows.
    path.write_text(json.dumps({key: 123.0}))
    assert flops.step_flops_per_image("B", batch=4) == 123.0
    # A damaged cache is recounted and rewritten.
    path.write_text("{not json")
    assert flops.step_flops_per_image("B", batch=4) == first
    assert json.loads(path.read_text()) == {key: first}


@pytest.mark.parametrize("arch", ["H", "B"])
def test_largest_conv_is_the_32_to_32_encoder_conv(arch):
    conv = flops.largest_conv(arch)
    assert (conv.transposed, conv.cin, conv.cout, conv.kernel, conv.stride, conv.side) == \
        (False, 32, 32, 4, 2, 32)
    assert conv.flops_per_image == _conv(1, 32, 32, 4, 16)
    assert conv.describe() == "conv 32->32, 4x4, stride 2, on 32x32"


def test_peaks_are_measured_in_both_dtypes():
    conv = flops.largest_conv("B")
    for amp in ("off", "bf16"):  # bf16 runs everywhere (emulated without bf16 hardware)
        assert flops.gemm_peak("cpu", amp, n=32, seconds=0.0) > 0
        assert flops.conv_peak("cpu", conv, amp, batch=2, seconds=0.0) > 0


def test_fraction_of_peak_is_achieved_over_peak():
    fig = report.figure("train.H.b64", "t", "img/s", 1000.0, 500.0)
    assert all(fig[k] is None for k in report.LIMIT_KEYS)
    report.with_limit(fig, 96.5e6, peak_gflops=193.0, conv_peak_gflops=386.0)
    assert fig["gflops"] == pytest.approx(96.5)  # 96.5 MFLOP x 1000 img/s
    assert fig["of_peak"] == pytest.approx(0.5) and fig["of_conv_peak"] == pytest.approx(0.25)
    assert report.format_fraction(fig["of_peak"]) == "50%"
    assert report.format_gflops(fig["gflops"]) == "96.5"
    report.with_limit(fig, 96.5e6, peak_gflops=None)
    assert fig["of_peak"] is None and report.format_fraction(None) == "-"


def test_of_peak_targets_follow_the_figures():
    def train(key: str, img_s: float, peak: float, amp: str = "off") -> dict:
        return report.with_limit(report.figure(key, "t", "img/s", img_s, 100.0, amp=amp),
                                 100e6, peak)

    record = {"dataset": "dsprites", "figures": [
        train("train.H.b64", 1000.0, 190.0),          # 100 GFLOP/s of 190: 53%
        train("train.B.b64", 900.0, 190.0),           # 47%
        train("train.H.b64.bf16", 1700.0, 400.0, "bf16"),  # 42%
        train("train.B.b64.bf16", 1500.0, 400.0, "bf16"),  # 37.5%
    ]}
    got = {(t["key"]): t for t in report.targets(record, "cpu")
           if t["what"].startswith("fraction")}
    assert {k: t["ok"] for k, t in got.items()} == {
        "train.H.b64": True, "train.B.b64": False, "train.H.b64.bf16": True,
        "train.B.b64.bf16": False}
    assert got["train.H.b64"]["target"] == ">= 50%" and got["train.B.b64.bf16"]["target"] == \
        ">= 40%"
    assert report.format_target(got["train.B.b64"]) == "47%"
    # GPU records have no CPU targets
    assert not [t for t in report.targets(record, "cuda:0") if t["what"].startswith("fraction")]


def test_cpu_record_names_the_model_and_its_bf16_flags():
    cpu = report.cpu_record()
    assert cpu["model"] == precision.cpu_model()
    assert set(cpu["flags"]) <= set(report.CPU_FLAGS)
    assert (precision.cpu_bf16_flag() in cpu["flags"]) == bool(precision.cpu_bf16_flag())
