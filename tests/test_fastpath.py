"""The fast paths give the same numbers as the plain PyTorch path (within float tolerance)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from bvae_tui.engine.config import TrainConfig  # noqa: E402
from bvae_tui.engine.train import adam, fastpath, process  # noqa: E402
from bvae_tui.engine.train.models import build_model  # noqa: E402
from bvae_tui.engine.train.objectives import compute_loss  # noqa: E402
from bvae_tui.engine.train.step import TrainStep  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


pytestmark = pytest.mark.usefixtures("one_thread")


def _batches(n: int, batch: int = 4) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return [(torch.rand(batch, 1, 64, 64, generator=g) < 0.1).float() for _ in range(n)]


def _train(cfg: TrainConfig, fast: bool, optimizer: str = "fast", arch: str = "H",
           steps: int = 3) -> tuple[list[float], torch.nn.Module, object]:
    """A few training steps: the trainer's step (``fast``) or the plain PyTorch loop; returns
    the losses."""
    torch.manual_seed(0)
    model = build_model(arch, 1, cfg.z_dim)
    if optimizer == "fast":
        opt = adam.make_optimizer(model.parameters(), cfg, "cpu")
    else:
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=optimizer == "fused")
    if fast:
        step = TrainStep(fastpath.prepare_model(model, cfg), opt, cfg, "cpu", "bernoulli")
    losses = []
    torch.manual_seed(1)  # the reparameterisation noise
    for i, x in enumerate(_batches(steps)):
        if fast:
            out = step(x, i + 1)
        else:
            logits, mu, logvar = model(x)
            out = compute_loss(cfg, logits, x, mu, logvar, i + 1, "bernoulli")
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()
        losses.append(out["loss"].item())
    return losses, model, opt


@pytest.mark.parametrize("arch", ["H", "B"])
def test_channels_last_matches_plain_path(arch):
    cfg = TrainConfig(dataset="dsprites-mini", lr=1e-3, channels_last="on", amp="off")
    fast, _, _ = _train(cfg, fast=True, arch=arch)
    plain, _, _ = _train(cfg.replace(channels_last="off"), fast=False, arch=arch)
    assert fast == pytest.approx(plain, rel=1e-4)
    assert fastpath.use_channels_last(cfg.replace(channels_last="auto"))
    assert not fastpath.use_channels_last(cfg.replace(channels_last="off"))


def test_lean_adam_equals_torch_adam():
    cfg = TrainConfig(dataset="dsprites-mini", lr=1e-3, channels_last="off", amp="off")
    lean, m_lean, opt = _train(cfg, fast=False, optimizer="fast")
    fused, m_fused, _ = _train(cfg, fast=False, optimizer="fused")
    default, m_default, _ = _train(cfg, fast=False, optimizer="default")
    assert lean == fused  # the same fused kernel: bit for bit
    assert lean == pytest.approx(default, rel=1e-5)
    for a, b in zip(m_lean.parameters(), m_default.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # Checkpoints interoperate with torch.optim.Adam in both directions.
    state = opt.state_dict()
    assert set(state["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    theirs = torch.optim.Adam(m_lean.parameters(), lr=cfg.lr)
    theirs.load_state_dict(state)
    ours = adam.Adam(m_lean.parameters(), lr=0.5)
    ours.load_state_dict(theirs.state_dict())
    assert ours.param_groups[0]["lr"] == cfg.lr
    assert float(ours.state[next(iter(m_lean.parameters()))]["step"]) == 3.0


def test_lean_adam_resumes_like_an_uninterrupted_run():
    cfg = TrainConfig(dataset="dsprites-mini", lr=1e-3, channels_last="off", amp="off")
    batches = _batches(4)

    def run(split: int | None) -> torch.Tensor:
        torch.manual_seed(0)
        model = build_model("B", 1, 4)
        opt = adam.Adam(model.parameters(), lr=cfg.lr)
        for i, x in enumerate(batches):
            if split is not None and i == split:  # "checkpoint" and reload into fresh objects
                saved = {"m": {k: v.clone() for k, v in model.state_dict().items()},
                         "o": opt.state_dict()}
                model = build_model("B", 1, 4)
                model.load_state_dict(saved["m"])
                opt = adam.Adam(model.parameters(), lr=99.0)
                opt.load_state_dict(saved["o"])
            torch.manual_seed(100 + i)
            logits, mu, logvar = model(x)
            loss = compute_loss(cfg, logits, x, mu, logvar, i + 1, "bernoulli")["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    torch.testing.assert_close(run(2), run(None), rtol=0, atol=0)


def test_autocast_follows_the_resolved_precision():
    x = torch.ones(2, 2)
    with fastpath.autocast(TrainConfig(amp="bf16"), "cpu"):
        assert (x @ x).dtype == torch.bfloat16
    with fastpath.autocast(TrainConfig(amp="off"), "cpu"):
        assert (x @ x).dtype == torch.float32
    with pytest.raises(ValueError, match="resolved"):  # the trainer resolves auto per machine
        fastpath.autocast(TrainConfig(amp="auto"), "cpu")


@pytest.mark.parametrize("arch", ["H", "B"])
def test_bf16_cpu_training_step_matches_float32(arch):
    """bf16 autocast on the CPU (emulated where the CPU lacks bf16 instructions: tiny sizes).
    From the same weights and batches, three steps' losses agree with float32's within 2%:
    bf16 keeps 8 significant bits (0.4% per rounding), and the losses are float32 sums over
    4,096 pixels, where the roundings mostly cancel."""
    cfg = TrainConfig(dataset="dsprites-mini", lr=1e-3, amp="off")
    plain, _, _ = _train(cfg, fast=True, arch=arch)
    bf16, model, _ = _train(cfg.replace(amp="bf16"), fast=True, arch=arch)
    assert bf16 == pytest.approx(plain, rel=2e-2)
    assert bf16 != plain  # the step did run in bf16
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay float32


def test_fallback_adam_is_fused_on_cuda_only(monkeypatch):
    """Where the private op fails its check, torch.optim.Adam takes over: one fused kernel for
    all parameters on CUDA, PyTorch's default (not fused) on the CPU."""
    params = [torch.nn.Parameter(torch.ones(3))]
    assert isinstance(adam.make_adam(params, "cpu", lr=1e-3), adam.Adam)  # the op works here
    monkeypatch.setattr(adam, "_probed", {"cpu": "test", "cuda": "test"})
    on_cpu = adam.make_adam(params, "cpu", lr=1e-3)
    on_cuda = adam.make_adam(params, "cuda:0", lr=1e-3)
    assert isinstance(on_cpu, torch.optim.Adam) and isinstance(on_cuda, torch.optim.Adam)
    assert not on_cpu.param_groups[0]["fused"]
    assert on_cuda.param_groups[0]["fused"] is True


def test_worker_env_carries_the_allocator_settings(monkeypatch):
    for key in process.MALLOC_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv(process.PLAIN_ENV, raising=False)
    env = process.worker_env()
    assert env == process.MALLOC_ENV
    assert int(env["MALLOC_MMAP_THRESHOLD_"]) >= 32 << 20
    monkeypatch.setenv("MALLOC_TOP_PAD_", "1")  # a user's own choice wins
    assert "MALLOC_TOP_PAD_" not in process.worker_env()
    monkeypatch.setenv(process.PLAIN_ENV, "1")
    assert process.worker_env() == {}


_FAULTS = textwrap.dedent("""
    import json, resource, sys, torch
    from bvae_tui.engine.train.adam import Adam
    from bvae_tui.engine.train.models import build_model
    from bvae_tui.engine.train.process import tune_allocator
    tuned = tune_allocator()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model("H", 1, 10)
    opt = Adam(model.parameters(), lr=1e-4)
    x = (torch.rand(32, 1, 64, 64) < 0.1).float()
    def step():
        logits, mu, logvar = model(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, x)
        opt.zero_grad(); loss.backward(); opt.step()
        return loss.item()
    for _ in range(2):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    losses = [step() for _ in range(3)]
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    print(json.dumps({"tuned": tuned, "faults": faults, "losses": losses}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc allocator")
def test_allocator_tuning_stops_per_step_page_faults_and_keeps_results():
    """The reason for the allocator settings: without them each step maps fresh pages."""
    def child(plain: bool) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in process.MALLOC_ENV}
        env[process.PLAIN_ENV] = "1" if plain else "0"
        env["PYTHONPATH"] = ROOT
        out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, cwd=ROOT, check=True,
                             capture_output=True, text=True, timeout=120).stdout
        return json.loads(out.strip().splitlines()[-1])

    plain, tuned = child(True), child(False)
    if not tuned["tuned"]:
        pytest.skip("no glibc mallopt here")
    assert not plain["tuned"]
    assert tuned["losses"] == plain["losses"]  # the allocator never changes a number
    assert tuned["faults"] * 5 < plain["faults"]


@pytest.mark.cuda
def test_gpu_fast_paths_match_plain_path(cuda_device):
    device = cuda_device
    cfg = TrainConfig(dataset="dsprites-mini", lr=1e-3, device=device, amp="off")
    results = {}
    for name, changes in {"plain": {"channels_last": "off"}, "fast": {},
                          "bf16": {"amp": "bf16"}}.items():
        c = cfg.replace(**changes)
        torch.manual_seed(0)
        model = build_model("H", 1, 10).to(device)
        net = fastpath.prepare_model(model, c)
        opt = (adam.make_optimizer(model.parameters(), c, device) if name != "plain"
               else torch.optim.Adam(model.parameters(), lr=c.lr))
        step = TrainStep(net, opt, c, device, "bernoulli")
        losses = []
        torch.manual_seed(1)
        for i, x in enumerate(_batches(4)):
            losses.append(step(x.to(device), i + 1)["loss"].item())
        results[name] = losses
    assert results["fast"] == pytest.approx(results["plain"], rel=1e-3)  # TF32 convolutions
    assert results["bf16"] == pytest.approx(results["plain"], rel=2e-2)
