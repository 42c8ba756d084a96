"""The GPU path end to end: ``--amp`` on a real GPU, training, eval, export and the benchmark.

Every test here is marked ``cuda`` and skipped without a GPU; benchmarks/gpu_check.sh runs them
with ``BVAE_TEST_CUDA=1``, which turns a missing GPU into a failure (tests/conftest.py).
"""

from __future__ import annotations

import json
import math
import os
import subprocess

import pytest

from bvae_tui.engine.bench import report
from bvae_tui.engine.errors import ConfigError
from bvae_tui.engine.runs import devices
from bvae_tui.engine.runs.store import list_runs
from bvae_tui.engine.train import precision
from tests.conftest import ROOT, bvae_command

pytestmark = pytest.mark.cuda


def _bf16(device: str) -> bool:
    return precision.native_bf16(device, precision.torch_capability(device))[0] is True


def _bvae(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([*bvae_command(), *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"bvae {' '.join(args)}: {proc.stderr[-2000:]}"
    return proc


@pytest.fixture
def gpu_env(cuda_device, runs_dir, env_data) -> dict[str, str]:
    return dict(os.environ, BVAE_RUNS_DIR=str(runs_dir), BVAE_DATA_DIR=str(env_data))


def test_auto_on_the_gpu_is_measured_once_and_cached(cuda_device, tmp_path, monkeypatch):
    monkeypatch.setenv(precision.CACHE_ENV, str(tmp_path))
    calls = []
    real = precision.measure_gain

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(precision, "measure_gain", counted)
    first = precision.resolve("auto", cuda_device)
    if _bf16(cuda_device):
        assert len(calls) == 1 and first.used in ("bf16", "off")
        assert set(first.gain) == {"H", "B"} and all(g > 0 for g in first.gain.values())
        assert precision.resolve("auto", cuda_device) == first and len(calls) == 1
        assert precision.resolve("bf16", cuda_device).used == "bf16"
    else:  # no bf16 hardware: float32 at once, and an explicit bf16 is refused
        assert first.used == "off" and not calls
        with pytest.raises(ConfigError):
            precision.resolve("bf16", cuda_device)
    gpus, _ = devices.list_gpus()
    if len(gpus) == 1:  # NVML (the launch check) and torch (the worker) agree
        assert devices.gpu_capability("cuda:0") in (precision.torch_capability(cuda_device),
                                                    None)


def test_train_eval_and_export_on_the_gpu(gpu_env, runs_dir):
    amps = ("off", "bf16") if _bf16("cuda:0") else ("off",)
    for amp in amps:
        _bvae(gpu_env, "train", "--dataset", "dsprites-mini", "--device", "cuda:0", "--amp", amp,
              "--iterations", "60", "--log-every", "20", "--checkpoint-every", "20",
              "--preview-every", "30", "--batch-size", "64", "--name", f"gpu-{amp}")
    runs = {run.name: run for run in list_runs(runs_dir)}
    for amp in amps:
        run = runs[f"gpu-{amp}"]
        assert run.status().state == "finished" and run.status().device == "cuda:0"
        assert (run.record().precision or {}).get("used") == amp
        rows = run.metrics()
        assert [r.iter for r in rows] == [20, 40, 60]
        assert all(math.isfinite(r.loss) and r.img_per_s > 0 for r in rows)
    run = runs["gpu-off"]
    _bvae(gpu_env, "eval", run.id, "--fast", "--metrics", "mig", "--device", "cuda:0")
    assert "mig" in run.eval_results().scores
    _bvae(gpu_env, "export", "gif", run.id)
    assert any(run.exports_dir.glob("*.gif"))


def test_quick_bench_on_the_gpu(gpu_env):
    record = json.loads(_bvae(gpu_env, "bench", "--quick", "--json", "--device", "cuda:0").stdout)
    assert record["device"] == "cuda:0" and record["schema"] == report.SCHEMA
    keys = {fig["key"] for fig in record["figures"]}
    assert {"train.H.b8", "train.B.b8", "eval.b64", "first_step"} <= keys
    assert ({"train.H.b8.bf16", "train.B.b8.bf16"} <= keys) == _bf16("cuda:0")
    assert record["amp_auto"]["amp"] == "auto"
    assert all(fig["fast"] > 0 and fig["baseline"] > 0 for fig in record["figures"])
