"""`bvae tui`: open the terminal UI (the same as the `bvae-tui` command)."""

from __future__ import annotations

from bvae_tui.cli.common import DataDirOpt, RunsDirOpt
from bvae_tui.cli.main import app


@app.command("tui")
def tui(runs_dir: RunsDirOpt = None, data_dir: DataDirOpt = None) -> None:
    """Browse runs, launch new ones and watch them live in a terminal UI."""
    from bvae_tui.tui.app import run_app  # textual only when the UI is wanted

    run_app(runs_dir, data_dir)
