"""Device listing and choice with a stand-in NVML (no GPU or driver needed)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from bvae_tui.engine.errors import DeviceError
from bvae_tui.engine.runs import devices
from bvae_tui.engine.runs.devices import gpu_spec, list_gpus, resolve_device

GIB = 1 << 30


class _NVMLError(Exception):
    pass


def fake_nvml(gpus=None, driver=True):
    """A stand-in for the pynvml module: ``gpus`` = [(name, free, total, util), ...], each with
    an optional fifth item, the compute capability (8.0 where not given)."""
    gpus = gpus or []

    def init():
        if not driver:
            raise _NVMLError("NVML Shared Library Not Found")

    def util(handle):
        if gpus[handle][3] is None:
            raise _NVMLError("Not Supported")
        return SimpleNamespace(gpu=gpus[handle][3], memory=0)

    return SimpleNamespace(
        NVMLError=_NVMLError, nvmlInit=init, nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: len(gpus), nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda h: gpus[h][0].encode(),
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(free=gpus[h][1], total=gpus[h][2],
                                                          used=gpus[h][2] - gpus[h][1]),
        nvmlDeviceGetUtilizationRates=util,
        nvmlDeviceGetCudaComputeCapability=lambda h: (gpus[h] + ((8, 0),))[4],
    )


TWO_GPUS = [("NVIDIA A100", 10 * GIB, 40 * GIB, 55), ("NVIDIA RTX 4090", 20 * GIB, 24 * GIB, None)]


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(devices, "_nvml", lambda: fake_nvml(TWO_GPUS))


@pytest.fixture
def no_driver(monkeypatch):
    monkeypatch.setattr(devices, "_nvml", lambda: fake_nvml(driver=False))


def test_list_gpus(two_gpus):
    gpus, reason = list_gpus()
    assert reason is None
    assert [(g.index, g.name, g.memory_free, g.memory_total, g.utilization) for g in gpus] == [
        (0, "NVIDIA A100", 10 * GIB, 40 * GIB, 55),
        (1, "NVIDIA RTX 4090", 20 * GIB, 24 * GIB, None),
    ]
    assert [g.capability for g in gpus] == [(8, 0), (8, 0)]
    assert devices.gpu_capability("cuda:1") == (8, 0) and devices.gpu_capability("cpu") is None


def test_auto_picks_most_free_memory(two_gpus):
    assert resolve_device("auto") == "cuda:1"
    assert resolve_device("cuda:0") == "cuda:0"
    assert resolve_device("0") == "cuda:0"
    assert resolve_device("cpu") == "cpu"


def test_missing_gpu_is_a_one_line_error(two_gpus):
    with pytest.raises(DeviceError, match="there is no GPU 7 .GPUs: 0, 1.") as info:
        resolve_device("cuda:7")
    assert "\n" not in str(info.value)


def test_no_driver(no_driver):
    gpus, reason = list_gpus()
    assert gpus == [] and "no NVIDIA driver" in reason and "\n" not in reason
    assert resolve_device("auto") == "cpu"
    with pytest.raises(DeviceError, match="cannot use GPU 0: no NVIDIA driver"):
        resolve_device("cuda:0")


def test_nvml_module_missing(monkeypatch):
    def missing():
        raise ImportError("No module named 'pynvml'")

    monkeypatch.setattr(devices, "_nvml", missing)
    assert list_gpus() == ([], "NVML is unavailable: the nvidia-ml-py package is not installed")


def test_gpu_spec():
    assert gpu_spec("auto") == "auto" and gpu_spec("3") == "cuda:3" and gpu_spec(None) is None
    with pytest.raises(DeviceError):
        gpu_spec("first")


def test_bvae_gpus_json_and_table(two_gpus):
    from bvae_tui.cli.main import app

    result = CliRunner().invoke(app, ["gpus", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [g["index"] for g in data["gpus"]] == [0, 1] and data["reason"] is None
    table = CliRunner().invoke(app, ["gpus"])
    assert "NVIDIA RTX 4090" in table.output and "CPU" in table.output


def test_bvae_gpus_without_driver(no_driver):
    from bvae_tui.cli.main import app

    result = CliRunner().invoke(app, ["gpus"])
    assert result.exit_code == 0
    assert "CPU" in result.output and "no NVIDIA driver" in result.output
