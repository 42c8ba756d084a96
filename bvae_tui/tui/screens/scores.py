"""Scores modal: the disentanglement scores of the runs in view, beside the paper's numbers.

Runs come from the runs screen's current filter (filter first to compare a chosen set); scores
are what `bvae eval` (or the worker's eval at the end) wrote to each run's eval.json.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from engine.runs import Run


def _score(value: Any) -> Text:
    if isinstance(value, (int, float)) and math.isfinite(value):
        return Text(f"{value:.3f}", justify="right")
    return Text("-", style="dim", justify="right")


def paper_betavae() -> dict[str, float]:
    """Higgins et al. 2017's BetaVAE-metric table on dSprites (kept by the engine)."""
    try:
        from engine.evaluate import PAPER_BETAVAE
    except Exception:  # noqa: BLE001 - the comparison still shows the runs
        return {}
    return dict(PAPER_BETAVAE)


class ScoresScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,c", "close", "Close")]

    def __init__(self, runs: list[tuple[str, Path, str, str]]) -> None:
        """``runs``: (name, path, objective text, dataset) of the runs to compare."""
        super().__init__()
        self.runs = runs

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog scores"):
            yield Static("Disentanglement scores  [dim](BV: BetaVAE, FV: FactorVAE, MIG; "
                         "esc closes)[/dim]", classes="title")
            yield DataTable(id="scores-table", cursor_type="row", zebra_stripes=True)
            yield Static(id="scores-note", classes="hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("run", "objective", "dataset", "at iter", "BV", "FV", "MIG",
                          "paper BV")
        scored = 0
        for name, path, objective, dataset in self.runs:
            data = Run(path).eval_results() or {}
            scores = data.get("scores") if isinstance(data.get("scores"), dict) else None
            if not scores:
                continue
            scored += 1
            fast = " (fast)" if data.get("fast") else ""
            table.add_row(name[:24], objective, dataset, f"{data.get('iteration', '-')}{fast}",
                          _score(scores.get("betavae")), _score(scores.get("factorvae")),
                          _score(scores.get("mig")), "")
        for label, value in paper_betavae().items():
            table.add_row(Text(f"paper: {label}", style="italic"), "", "dSprites", "", "", "",
                          "", _score(value))
        note = (f"{scored} of {len(self.runs)} runs in view have scores"
                if scored else "no run in view has scores yet: 'bvae eval RUN' writes them")
        self.query_one("#scores-note", Static).update(
            note + " · paper: Higgins et al. 2017, BetaVAE metric on dSprites")

    def action_close(self) -> None:
        self.dismiss(None)
