"""The installed distribution: bvae_tui is its only top-level package, and nothing is left out."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # Build from a copy of the tracked files: setuptools writes build/ into the source tree.
    src = tmp_path_factory.mktemp("src")
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    # No isolation: setuptools comes from the dev environment, so the test needs no network.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(out), str(src)], check=True, timeout=300,
                   env={"PIP_NO_INPUT": "1", "PATH": "/usr/bin:/bin", "TMPDIR": str(src)})
    (path,) = out.glob("bvae_tui-*.whl")
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def test_only_top_level_package_is_bvae_tui(wheel):
    tops = {name.split("/")[0] for name in wheel if ".dist-info/" not in name}
    assert tops == {"bvae_tui"}


def test_every_source_module_and_style_is_in_the_wheel(wheel):
    """A new package folder must be added to pyproject's list, or it would be missing here."""
    expected = set()
    for folder, installed in (("bvae_tui", "bvae_tui"), ("engine", "bvae_tui/engine"),
                              ("datasets", "bvae_tui/datasets")):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".tcss", ".toml") and "__pycache__" not in path.parts:
                expected.add(f"{installed}/{path.relative_to(ROOT / folder).as_posix()}")
    missing = sorted(expected - set(wheel))
    assert not missing, f"not in the wheel (add the package to pyproject.toml): {missing}"


def test_python_dash_m_runs_the_cli():
    """`python -m bvae_tui.cli.main` is the same command as `bvae` (once it had no commands)."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "bvae_tui.cli.main", "runs", "--help"],
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert "--runs-dir" in result.stdout
