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
SweepOpt = Annotated[str | None, typer.Option(
    "--sweep", help="the members of this sweep (id, unique prefix or name; 'bvae sweeps' lists "
    "them)", show_default=False, metavar="SWEEP", rich_help_panel="Which runs")]
RunArg = Annotated[str, typer.Argument(help="run id, unique id prefix, name, or path",
                                       show_default=False)]


def find_run(ref: str, runs_dir: str | None):
    """The run a RUN argument names, under ``--runs-dir`` (one-line RunError if none or many)."""
    from bvae_tui.engine.runs.store import find_run as find
    from bvae_tui.engine.runs.store import runs_root

    return find(runs_root(runs_dir), ref)


def pick_runs(refs: list[str] | None, filter_text: str | None, runs_dir: str | None,
              sweep: str | None = None) -> list:
    """The runs named by ``refs``, the members of ``sweep`` and/or the runs matched by
    ``filter_text`` (every run when none is given), each once, in the order given, else oldest
    first. Members not created yet (a sweep being set up) are left out."""
    from bvae_tui.engine.analysis.compare_runs import filter_runs
    from bvae_tui.engine.errors import RunError
    from bvae_tui.engine.runs.store import list_runs, runs_root
    from bvae_tui.engine.runs.sweeps.store import find_sweep

    root = runs_root(runs_dir)
    chosen = [find_run(ref, runs_dir) for ref in refs or []]
    if sweep is not None:
        found = find_sweep(root, sweep)
        members = [run for run in found.members() if run.path.is_dir()]
        if not members:
            raise RunError(f"sweep {found.id} has no member run directories; "
                           f"'bvae sweep show {found.id}' says why")
        chosen += members
    if filter_text is not None:
        matched = filter_runs(list_runs(root), filter_text)
        if not matched:
            raise RunError(f"no run under {root} matches '{filter_text}'; 'bvae runs' lists them")
        chosen += matched
    elif not refs and sweep is None:
        chosen = list_runs(root)
        if not chosen:
            raise RunError(f"no runs under {root}; start some with 'bvae train'")
    unique = {run.path: run for run in chosen}
    return list(unique.values())


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
