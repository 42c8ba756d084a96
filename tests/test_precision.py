"""``--amp auto|bf16|off``: bf16 hardware per device, the one-line errors, and ``auto``'s cached
decision (made once, reused, measured again for another CPU model or torch version).

The CPU's /proc/cpuinfo and the GPUs' NVML answers are replaced by stand-ins, so these tests
mean the same on any machine; the measurement itself runs for real on tiny sizes.
"""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from bvae_tui.engine.config import TrainConfig
from bvae_tui.engine.errors import ConfigError
from bvae_tui.engine.runs import devices
from bvae_tui.engine.runs.launch import check_launch
from bvae_tui.engine.runs.resume import plan_resume
from bvae_tui.engine.runs.store import create_run, read_json
from bvae_tui.engine.train import precision
from tests.test_devices import GIB, fake_nvml

pytestmark = pytest.mark.usefixtures("one_thread")


def cpu(monkeypatch, model: str, *flags: str) -> None:
    """Pretend to be a CPU ``model`` with these /proc/cpuinfo flags."""
    info = {"model name": model, "flags": " ".join(("fpu", "avx2", *flags))}
    monkeypatch.setattr(precision, "_cpuinfo", lambda: dict(info))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty precision cache of this test's own."""
    monkeypatch.setenv(precision.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(precision.ALLOW_EMULATED_ENV, raising=False)
    return tmp_path / "cache" / precision.CACHE_FILE


@pytest.fixture
def measured(monkeypatch):
    """measure_gain replaced by set figures; ``calls`` counts the measurements."""
    state = {"calls": 0, "gain": {"H": 1.45, "B": 1.38}, "gap": 0.001}

    def fake(device, *args, **kwargs):
        state["calls"] += 1
        return dict(state["gain"]), state["gap"]

    monkeypatch.setattr(precision, "measure_gain", fake)
    return state


def test_bf16_hardware_per_device(monkeypatch):
    cpu(monkeypatch, "Intel Xeon", "avx512f", "amx_tile", "amx_bf16")
    assert precision.native_bf16("cpu") == (True, "the CPU (Intel Xeon) has amx_bf16")
    cpu(monkeypatch, "Intel Xeon", "avx512f", "avx512_bf16")
    assert precision.native_bf16("cpu")[0] is True
    monkeypatch.setattr(precision, "_cpuinfo", lambda: {"Features": "fp asimd bf16"})  # Arm
    assert precision.native_bf16("cpu")[0] is True
    cpu(monkeypatch, "AMD EPYC")
    native, why = precision.native_bf16("cpu")
    assert native is False and "AMD EPYC" in why and "no bf16 instructions" in why
    assert precision.native_bf16("cuda:0", (8, 0))[0] is True
    assert precision.native_bf16("cuda:0", (9, 0))[0] is True
    assert precision.native_bf16("cuda:1", (7, 5)) == (
        False, "cuda:1 has compute capability 7.5; bf16 hardware starts at 8.0")
    assert precision.native_bf16("cuda:0", None)[0] is None  # unknown: the worker asks torch


def test_explicit_bf16_without_bf16_hardware_is_a_one_line_error(monkeypatch, cache):
    cpu(monkeypatch, "AMD EPYC")
    with pytest.raises(ConfigError) as info:
        precision.check_amp("bf16", "cpu")
    message = str(info.value)
    assert info.value.field == "amp" and "\n" not in message
    assert message.startswith("--amp bf16: the CPU (AMD EPYC) has no bf16 instructions")
    assert "--amp auto or off" in message and precision.ALLOW_EMULATED_ENV in message
    with pytest.raises(ConfigError, match="compute capability 7.5"):
        precision.check_amp("bf16", "cuda:0", (7, 5))
    for amp, device, capability in [("auto", "cpu", None), ("off", "cpu", None),
                                    ("bf16", "cuda:0", (8, 0)), ("bf16", "cuda:0", None),
                                    ("auto", "cuda:0", (7, 5))]:
        precision.check_amp(amp, device, capability)  # no error
    with pytest.raises(ConfigError):  # the training process checks again (another machine)
        precision.resolve("bf16", "cpu")
    monkeypatch.setenv(precision.ALLOW_EMULATED_ENV, "1")  # emulation asked for on purpose
    precision.check_amp("bf16", "cpu")
    used = precision.resolve("bf16", "cpu")
    assert used.used == "bf16" and "emulated" in used.reason
    cpu(monkeypatch, "Intel Xeon", "amx_bf16")
    monkeypatch.delenv(precision.ALLOW_EMULATED_ENV)
    assert precision.resolve("bf16", "cpu").used == "bf16"  # supported: honoured, not measured
    assert not cache.exists()


def test_bvae_train_refuses_bf16_before_a_run_exists(monkeypatch, cache, runs_dir, env_data):
    from bvae_tui.cli.main import app

    cpu(monkeypatch, "AMD EPYC")
    result = CliRunner().invoke(app, ["train", "--dataset", "dsprites-mini", "--device", "cpu",
                                      "--amp", "bf16", "--iterations", "2", "--detach"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --amp bf16: the CPU (AMD EPYC)")
    assert list(runs_dir.iterdir()) == []  # nothing created


def test_gpu_without_bf16_is_refused_at_launch(monkeypatch, env_data):
    gpus = [("Tesla T4", 10 * GIB, 16 * GIB, 0, (7, 5)), ("NVIDIA A100", 10 * GIB, 40 * GIB, 0)]
    monkeypatch.setattr(devices, "_nvml", lambda: fake_nvml(gpus))
    cfg = TrainConfig(dataset="dsprites-mini", amp="bf16")
    with pytest.raises(ConfigError, match=r"^--amp bf16: cuda:0 has compute capability 7.5"):
        check_launch(cfg.replace(device="cuda:0"))
    assert check_launch(cfg.replace(device="cuda:1")) == "cuda:1"
    assert check_launch(cfg.replace(device="cuda:0", amp="auto")) == "cuda:0"


def test_resume_checks_bf16_on_the_machine_it_resumes_on(monkeypatch, tmp_path, env_data):
    run = create_run(tmp_path / "runs", TrainConfig(dataset="dsprites-mini", amp="bf16",
                                                    device="cpu"), env_data)
    run.write_status(state="stopped", iteration=0)
    cpu(monkeypatch, "Intel Xeon", "amx_bf16")
    plan_resume(run).lock.release()
    cpu(monkeypatch, "AMD EPYC")
    with pytest.raises(ConfigError, match="no bf16 instructions"):
        plan_resume(run)
    cpu(monkeypatch, "Intel Xeon", "amx_bf16")
    plan_resume(run).lock.release()  # the refusal released the lock


def test_auto_is_measured_once_and_cached_per_cpu_model(monkeypatch, cache, measured):
    cpu(monkeypatch, "Intel Xeon A", "amx_bf16")
    first = precision.resolve("auto", "cpu")
    assert (first.amp, first.used, measured["calls"]) == ("auto", "bf16", 1)
    assert first.gain == {"H": 1.45, "B": 1.38}
    assert "1.45x (arch H), 1.38x (arch B)" in first.reason and str(cache) in first.reason
    assert precision.resolve("auto", "cpu") == first and measured["calls"] == 1  # reused
    entry = read_json(cache)["cpu: Intel Xeon A (amx_bf16)"]
    assert entry["torch"] == torch.__version__ and entry["device"] == "Intel Xeon A"

    cpu(monkeypatch, "Intel Xeon B", "amx_bf16")  # another CPU model: measured again
    measured["gain"] = {"H": 1.04, "B": 1.2}
    second = precision.resolve("auto", "cpu")
    assert second.used == "off" and measured["calls"] == 2
    assert "only 1.04x (arch H), 1.20x (arch B)" in second.reason
    assert set(read_json(cache)) == {"cpu: Intel Xeon A (amx_bf16)", "cpu: Intel Xeon B (amx_bf16)"}

    data = read_json(cache)  # another torch version: measured again
    data["cpu: Intel Xeon B (amx_bf16)"]["torch"] = "1.0.0"
    cache.write_text(json.dumps(data))
    measured["gain"], measured["gap"] = {"H": 1.5, "B": 1.5}, 0.2  # fast, but far off fp32
    third = precision.resolve("auto", "cpu")
    assert third.used == "off" and "loss was 20.0% off" in third.reason
    assert measured["calls"] == 3

    cache.write_text("{not json")  # a damaged cache is measured again, not an error
    cpu(monkeypatch, "Intel Xeon A", "amx_bf16")
    assert precision.resolve("auto", "cpu").used == "off" and measured["calls"] == 4


def test_a_decision_made_without_bf16_is_not_reused_on_the_same_model_with_it(
        monkeypatch, cache, measured):
    """Two virtual CPUs that both call themselves "AMD EPYC": AVX2 only, then avx512_bf16."""
    cpu(monkeypatch, "AMD EPYC")
    assert precision.resolve("auto", "cpu").used == "off" and measured["calls"] == 0
    data = read_json(cache) or {}
    data[precision.cache_key("cpu")] = {"used": "off", "reason": "measured on AVX2", "gain": {},
                                        "torch": torch.__version__}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(data))  # as a cache copied from the AVX2 machine would be
    cpu(monkeypatch, "AMD EPYC", "avx512f", "avx512_bf16")
    decided = precision.resolve("auto", "cpu")
    assert measured["calls"] == 1 and decided.used == "bf16"  # measured anew, not reused
    assert set(read_json(cache)) >= {"cpu: AMD EPYC (no bf16)", "cpu: AMD EPYC (avx512_bf16)"}


def test_auto_without_bf16_hardware_is_float32_without_measuring(monkeypatch, cache, measured):
    cpu(monkeypatch, "AMD EPYC")
    used = precision.resolve("auto", "cpu")
    assert used.used == "off" and "no bf16 instructions" in used.reason
    assert measured["calls"] == 0 and not cache.exists()
    assert precision.resolve("off", "cpu").used == "off"


def test_the_measurement_times_both_precisions_and_leaves_the_rng_alone():
    before = torch.get_rng_state()
    gain, gap = precision.measure_gain("cpu", archs=("B",), batch=2, rounds=1, steps=1)
    assert set(gain) == {"B"} and gain["B"] > 0
    assert 0 <= gap < 0.02  # the same weights and images: bf16's first loss is close
    assert torch.equal(torch.get_rng_state(), before)


def test_a_run_records_its_precision(monkeypatch, cache, measured, runs_dir, env_data):
    """The trainer resolves --amp auto, trains in it and records it in config.json."""
    from bvae_tui.engine.runs.launch import start_run
    from bvae_tui.engine.train.trainer import train

    cpu(monkeypatch, "AMD EPYC")
    cfg = TrainConfig(dataset="dsprites-mini", device="cpu", iterations=2, batch_size=4,
                      z_dim=2, log_every=1, preview_every=0)
    run = start_run(cfg, runs_dir, env_data, detach=False)
    assert train(run) == "finished"
    assert run.record().precision == {"amp": "auto", "used": "off", "gain": None,
                                         "reason": precision.native_bf16("cpu")[1]}
