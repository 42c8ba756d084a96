"""Fixtures for the tests on a real Slurm cluster (tests/test_slurm_real.py); tests/conftest.py
imports them so that the cluster is one for the whole session.

Without Slurm's packages the tests skip and say how to install them; under ``CI=true`` that is
a failure instead (CI installs them: .ci/run, ``make test`` as root).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import pytest

from tests.slurm_cluster import PACKAGES, SlurmCluster, missing_programs


@pytest.fixture(scope="session")
def real_slurm() -> Iterator[SlurmCluster]:
    """A one-node Slurm cluster with accounting (MariaDB + slurmdbd) for the whole session."""
    missing = missing_programs(accounting=True)
    if missing:
        why = (f"a real Slurm needs {', '.join(missing)}: apt-get install "
               f"--no-install-recommends {PACKAGES} (make test does it as root)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {why}")
        pytest.skip(why)
    if os.geteuid() != 0:
        why = "the test Slurm cluster runs its daemons as root (SlurmUser=root)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {why}")
        pytest.skip(why)
    pytest.importorskip("submitit")
    cluster = SlurmCluster(accounting=True).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def slurm_env(real_slurm, env, runs_dir, monkeypatch) -> Iterator[dict[str, str]]:
    """The environment of `bvae` on the real cluster (also this process's, for the engine
    calls a test makes); every job left is cancelled at the end, and the node is idle again."""
    from tests.sweep_helpers import kill_everything

    for key in ("SLURM_CONF", "PATH", "BVAE_TEST_SLURM_CLUSTER"):
        monkeypatch.setenv(key, real_slurm.env[key])
    yield {**env, **{k: real_slurm.env[k] for k in ("SLURM_CONF", "PATH",
                                                      "BVAE_TEST_SLURM_CLUSTER")}}
    with contextlib.suppress(Exception):
        real_slurm.run("scancel", "--user", str(os.getuid()), check=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and real_slurm.run("squeue", "-h", check=False).stdout:
        time.sleep(0.5)
    kill_everything(runs_dir)
