"""The engine and datasets stay headless, imports point down only, and `bvae --help` stays fast."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import ROOT

UI_MODULES = ("textual", "rich", "typer", "click")
# Where each installed package lives in the repository.
FOLDERS = {"bvae_tui.engine": ROOT / "engine", "bvae_tui.datasets": ROOT / "datasets"}


def _modules(package: str) -> list[str]:
    """Every module of ``package`` (recursively), by its installed name."""
    folder = FOLDERS[package]
    out = []
    for path in sorted(folder.rglob("*.py")):
        parts = list(path.relative_to(folder).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append(".".join([package, *parts]))
    return out


def _source(module: str) -> tuple[str, bool]:
    """(source text, is a package) of an installed module name."""
    for package, folder in FOLDERS.items():
        if module == package or module.startswith(package + "."):
            rel = module[len(package):].lstrip(".").replace(".", "/")
            path = folder / rel
            if path.is_dir():
                return (path / "__init__.py").read_text(), True
            return path.with_suffix(".py").read_text(), False
    raise KeyError(module)


def _imports(module: str) -> set[str]:
    """Project modules ``module`` imports anywhere in its body (functions too)."""
    text, is_package = _source(module)
    base = module.split(".") if is_package else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                prefix = ".".join(base[: len(base) - node.level + 1])
                mod = f"{prefix}.{node.module}" if node.module else prefix
            else:
                mod = node.module or ""
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        found.update(n for n in names if n.startswith("bvae_tui."))
    return found


HEADLESS = _modules("bvae_tui.engine") + _modules("bvae_tui.datasets")


def test_no_import_cycles_in_engine_or_datasets():
    """Imports inside functions count too: a cycle hidden in a function is still a cycle."""
    known = set(HEADLESS)
    graph = {m: {i for i in _imports(m) if i in known and i != m} for m in HEADLESS}
    # A package's own __init__ importing its children is not a cycle worth reporting.
    graph = {m: {i for i in deps if not m.startswith(i + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_layers_point_down():
    """datasets imports no engine, and neither imports the faces (cli, tui)."""
    for m in HEADLESS:
        bad = [i for i in _imports(m) if i.startswith(("bvae_tui.cli", "bvae_tui.tui"))]
        if m.startswith("bvae_tui.datasets"):
            bad += [i for i in _imports(m) if i.startswith("bvae_tui.engine")]
        assert not bad, f"{m} imports {bad}"


@pytest.mark.parametrize("module", HEADLESS)
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
