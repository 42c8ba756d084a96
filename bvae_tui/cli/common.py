"""Options and helpers shared by the `bvae` commands."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

RunsDirOpt = Annotated[
    str | None,
    typer.Option("--runs-dir", envvar="BVAE_RUNS_DIR", help="where runs live (default: ./runs)",
                 show_default=False),
]
DataDirOpt = Annotated[
    str | None,
    typer.Option("--data-dir", envvar="BVAE_DATA_DIR",
                 help="where datasets are cached (default: ./data)", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]
RunArg = Annotated[str, typer.Argument(help="run id, unique id prefix, name, or path",
                                       show_default=False)]


def find_run(ref: str, runs_dir: str | None):
    """The run a RUN argument names, under ``--runs-dir`` (one-line RunError if none or many)."""
    from bvae_tui.engine.runs.store import find_run as find
    from bvae_tui.engine.runs.store import runs_root

    return find(runs_root(runs_dir), ref)


def print_json(data: Any) -> None:
    """Strict JSON on stdout (no colour, no wrapping; NaN and infinities as null) for scripts."""
    from bvae_tui.engine.runs.files import strict_json

    sys.stdout.write(strict_json(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def console():
    """A rich console on stdout (imported lazily: rich is not needed for --help)."""
    from rich.console import Console

    return Console(highlight=False)


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
