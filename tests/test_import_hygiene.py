"""The engine and datasets stay headless, and `bvae --help` stays fast."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

UI_MODULES = ("textual", "rich", "typer", "click")


def _modules(package: str) -> list[str]:
    path = ROOT / package
    return [f"{package}.{m.name}" for m in pkgutil.iter_modules([str(path)])]


@pytest.mark.parametrize("module", _modules("engine") + _modules("datasets"))
def test_headless_module_imports_no_ui(module):
    code = (
        "import sys, importlib\n"
        f"importlib.import_module({module!r})\n"
        f"bad = [m for m in {UI_MODULES!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "", f"{module} pulls in UI modules: {out.stdout.strip()}"


def test_cli_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from bvae_tui.cli.main import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('torch', 'sklearn', 'pynvml', 'textual', 'torchvision') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"bvae --help imports {out.stdout.strip()}"
