"""A runs dir this process may not write: a read-only mount, and someone else's runs.

Tests run as root on the CI machines, and root ignores permission bits, so a chmod proves
nothing. The read-only case bind-mounts the runs dir read-only in a private mount namespace
(``unshare -m``); the foreign case runs the command as the user ``nobody`` (``setpriv``). Each is
skipped where the machine does not allow it. Every command that writes must say so in one line
and change nothing; the commands that only read must still work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bvae_tui.engine.config import make_config
from bvae_tui.engine.runs.store import create_run
from bvae_tui.engine.train.trainer import train
from tests.conftest import bvae_command

NOBODY = 65534


def _works(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _read_only_mount(root: Path) -> list[str]:
    script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, str(root)]


def _as_nobody(root: Path) -> list[str]:
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


WAYS = {
    "read-only mount": (_read_only_mount, "read-only file system"),
    "another user's runs": (_as_nobody, "permission denied"),
}


@pytest.fixture(scope="module")
def world(mini_data_dir, tmp_path_factory):
    """A world-readable folder (nobody must be able to read it) with data and a runs dir
    holding a stopped run that has a checkpoint."""
    base = Path(tempfile.mkdtemp(prefix="bvae-readonly-"))
    try:
        shutil.copytree(mini_data_dir, base / "data")
        runs = base / "runs"
        runs.mkdir()
        cfg = make_config(None, dataset="dsprites-mini", device="cpu", z_dim=3, batch_size=16,
                          iterations=20, log_every=10, checkpoint_every=10, preview_every=0)
        run = create_run(runs, cfg, base / "data")
        calls = {"n": 0}

        def stop_after_10() -> bool:
            calls["n"] += 1
            return calls["n"] > 10

        assert train(run, should_stop=stop_after_10) == "stopped"
        for path in [base, *base.rglob("*")]:  # readable by all, writable by root only
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield base, run
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*")}


@pytest.fixture(params=list(WAYS))
def confined(request, world):
    """(runner prefix, expected reason, base, run) for one way of being unable to write."""
    base, run = world
    make_prefix, reason = WAYS[request.param]
    prefix = make_prefix(base / "runs")
    probe = [*prefix, sys.executable, "-c",
             f"import os,sys; sys.exit(0 if os.path.isdir({str(run.path)!r}) and not "
             f"os.access({str(run.path)!r}, os.W_OK) else 1)"]
    if os.geteuid() != 0 or not _works(probe):
        pytest.skip(f"{request.param}: not possible on this machine (needs root, unshare, "
                    "setpriv)")
    return prefix, reason, base, run


def _bvae(prefix: list[str], base: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, BVAE_RUNS_DIR=str(base / "runs"), BVAE_DATA_DIR=str(base / "data"),
               HOME=str(base), OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([*prefix, *bvae_command(), *args], env=env, capture_output=True,
                          text=True, timeout=300, cwd=base)


WRITERS = ["resume RUN", "resume RUN --detach", "eval RUN --fast", "runs rm RUN --yes",
           "export gif RUN"]


@pytest.mark.parametrize("command", WRITERS)
def test_writing_commands_say_so_in_one_line_and_change_nothing(confined, command):
    prefix, reason, base, run = confined
    before = _snapshot(base)
    out = _bvae(prefix, base, *command.replace("RUN", run.id).split())
    assert out.returncode == 1, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert reason in lines[0].lower() and "Traceback" not in out.stderr, lines
    assert _snapshot(base) == before


def test_train_into_it_says_so(confined):
    prefix, reason, base, _ = confined
    before = _snapshot(base)
    out = _bvae(prefix, base, "train", "--dataset", "dsprites-mini", "--iterations", "1")
    assert out.returncode == 1 and "not writable" in out.stderr, out.stderr
    assert _snapshot(base) == before


def test_reading_commands_still_work(confined):
    prefix, _, base, run = confined
    for args in (("runs",), ("runs", "--json"), ("runs", "show", run.id)):
        out = _bvae(prefix, base, *args)
        assert out.returncode == 0, (args, out.stderr)
        assert run.id in out.stdout
