"""Shared fixtures: tiny procedural data, isolated runs and data dirs, CPU only."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.slurm_fixtures import real_slurm, slurm_env  # noqa: F401 (one cluster a session)

ROOT = Path(__file__).resolve().parents[1]

# Tests never touch a GPU, and keep torch to the two cores of the CI machine.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("OMP_NUM_THREADS", "2")


def pytest_report_header(config) -> list[str]:
    """Where the suite ran: training-based tests may behave differently on another CPU kind,
    so a failure report must say which one this was."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    isa = torch.backends.cpu.get_cpu_capability()  # the kernels torch picked: AVX2, AVX512...
    return [f"cpu: {cpu} ({os.cpu_count()} logical cores, torch kernels {isa}); torch "
            f"{torch.__version__} ({torch.get_num_threads()} threads), numpy {_version('numpy')}"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test on the real Slurm cluster reports what Slurm said: the queue and the tail
    of every daemon's log (a CI failure is otherwise a bare timeout)."""
    outcome = yield
    report = outcome.get_result()
    cluster = getattr(item, "funcargs", {}).get("real_slurm")
    if report.when == "call" and report.failed and cluster is not None:
        queue = cluster.run("squeue", "-a", "--array", "-o", "%i|%T|%r|%S", check=False)
        report.sections.append(("slurm cluster", f"squeue:\n{queue.stdout}{queue.stderr}\n"
                                + cluster.log_tail(40)))


def _version(package: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


@pytest.fixture
def one_thread():
    """One intra-op thread for tests that train: tiny models gain nothing from two, and lose a
    lot when the suite shares the CPU with the workers it starts."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


CUDA_REQUIRED_ENV = "BVAE_TEST_CUDA"


@pytest.fixture
def cuda_device() -> str:
    """``cuda:0`` for the tests marked ``cuda``: skipped without a usable GPU, and a failure then
    when ``BVAE_TEST_CUDA=1`` (benchmarks/gpu_check.sh sets it, and shows the GPU with
    ``CUDA_VISIBLE_DEVICES``, which this file otherwise empties)."""
    import torch

    if not torch.cuda.is_available():
        if os.environ.get(CUDA_REQUIRED_ENV, "") not in ("", "0"):
            pytest.fail(f"{CUDA_REQUIRED_ENV}=1 but torch sees no CUDA GPU "
                        f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
        pytest.skip("needs a CUDA GPU")
    return "cuda:0"


@pytest.fixture(scope="session", autouse=True)
def precision_cache(tmp_path_factory):
    """A private precision cache (BVAE_CACHE_DIR; workers and CLI subprocesses inherit it) in
    which ``--amp auto`` is float32 on this CPU even where it has bf16 hardware, so that the
    suite's numbers do not depend on the machine. tests/test_precision.py covers ``auto``
    itself, with caches of its own."""
    from bvae_tui.engine.runs.store import write_json_atomic
    from bvae_tui.engine.train import precision

    before = os.environ.get(precision.CACHE_ENV)
    os.environ[precision.CACHE_ENV] = str(tmp_path_factory.mktemp("cache"))
    if precision.cpu_bf16_flag():  # without bf16 hardware auto is float32 anyway
        import torch

        write_json_atomic(precision.cache_path(), {precision.cache_key("cpu"): {
            "used": "off", "reason": "float32 for the test suite (tests/conftest.py)",
            "gain": {}, "torch": torch.__version__}})
    yield
    if before is None:
        os.environ.pop(precision.CACHE_ENV, None)
    else:
        os.environ[precision.CACHE_ENV] = before


@pytest.fixture(scope="session")
def mini_data_dir(tmp_path_factory) -> Path:
    """A data root holding the prepared ``dsprites-mini`` grid (4,608 procedural images)."""
    from bvae_tui.datasets.prepare import prepare

    root = tmp_path_factory.mktemp("data")
    prepare("dsprites-mini", root)
    return root


@pytest.fixture(scope="session")
def mini(mini_data_dir):
    """The prepared ``dsprites-mini`` dataset, opened (memory-mapped; read-only use)."""
    from bvae_tui.datasets.prepare import open_dataset

    return open_dataset("dsprites-mini", mini_data_dir, prepare_missing=False)


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    """An empty runs root, also exported as BVAE_RUNS_DIR for subprocesses and the CLI."""
    path = tmp_path / "runs"
    path.mkdir()
    monkeypatch.setenv("BVAE_RUNS_DIR", str(path))
    return path


@pytest.fixture
def env_data(mini_data_dir, monkeypatch) -> Path:
    """BVAE_DATA_DIR pointed at the prepared mini data."""
    monkeypatch.setenv("BVAE_DATA_DIR", str(mini_data_dir))
    return mini_data_dir


@pytest.fixture
def env(runs_dir, env_data) -> dict[str, str]:
    """The environment of a `bvae` or worker subprocess: these runs and data, one thread, CPU."""
    e = dict(os.environ)
    e.update(BVAE_RUNS_DIR=str(runs_dir), BVAE_DATA_DIR=str(env_data), OMP_NUM_THREADS="1",
             CUDA_VISIBLE_DEVICES="")
    return e


def bvae_command() -> list[str]:
    """The installed `bvae` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("bvae")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bvae_tui.cli.main"]


@pytest.fixture
def schedulers(monkeypatch) -> list[str]:
    """Sweeps whose scheduler the TUI would have started (none is), in order; no NVML, so the
    device picker offers the CPU only whatever this machine has."""
    from bvae_tui.engine.runs import devices
    from bvae_tui.engine.runs.sweeps import local

    def no_nvml():
        raise ImportError("No module named 'pynvml'")

    started: list[str] = []
    monkeypatch.setattr(local, "start_scheduler",
                        lambda sweep, poll=None: started.append(sweep.id) or 0)
    monkeypatch.setattr(devices, "_nvml", no_nvml)
    return started
