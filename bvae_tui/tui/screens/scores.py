"""Scores modal: the disentanglement scores of the runs in view, beside the paper's numbers.

Runs come from the runs screen's current filter (filter first to compare a chosen set); scores
are what `bvae eval` (or the worker's eval at the end) wrote to each run's eval.json.
"""

from __future__ import annotations

import math
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from bvae_tui.engine.runs.store import Run
from bvae_tui.safe_text import as_text, plain


def _score(value: float | None) -> Text:
    if value is not None and math.isfinite(value):
        return Text(f"{value:.3f}", justify="right")
    return Text("-", style="dim", justify="right")


# eval.json's scores in column order; with all of them the table scrolls sideways (the run
# column stays).
SCORE_COLUMNS = (("betavae", "BV"), ("factorvae", "FV"), ("mig", "MIG"), ("dci", "DCI"),
                 ("sap", "SAP"), ("modularity", "Mod"), ("explicitness", "Expl"), ("udr", "UDR"))
NAME_WIDTH = 16
DATASET_WIDTH = 13


def _cut(text: str, width: int) -> Text:
    """``text`` as one line of Text (a DataTable reads a str as markup; run names are the
    user's), cut to ``width`` characters, the last one an ellipsis when cut."""
    text = plain(text)
    return as_text(text if len(text) <= width else text[: width - 1] + "…")


def _iters(value: int | None) -> str:
    """``300k`` style iteration counts (the column stays narrow); '-' when unknown."""
    if value is None:
        return "-"
    if value >= 1_000_000:
        return f"{value / 1_000_000:.3g}M"
    if value >= 10_000:
        return f"{value / 1000:.3g}k"
    return str(value)


def paper_betavae() -> dict[str, float]:
    """Higgins et al. 2017's BetaVAE-metric table on dSprites (kept by the engine)."""
    try:
        from bvae_tui.engine.analysis.papers import PAPER_BETAVAE
    except Exception:  # noqa: BLE001 - the comparison still shows the runs
        return {}
    return dict(PAPER_BETAVAE)


class ScoresScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,p", "close", "Close")]

    def __init__(self, runs: list[tuple[str, Path, str, str]]) -> None:
        """``runs``: (name, path, objective text, dataset) of the runs to compare."""
        super().__init__()
        self.runs = runs

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog scores"):
            yield Static("Disentanglement scores  [dim]BV: BetaVAE, FV: FactorVAE · "
                         "esc closes[/dim]", classes="title")
            yield DataTable(id="scores-table", cursor_type="row", zebra_stripes=True)
            yield Static(id="scores-note", classes="hint")

    def on_mount(self) -> None:
        # Sized for 80 columns: short headers, names cut with an ellipsis, the paper's numbers
        # in the BV column of their own rows, and the label column fixed when scrolling sideways.
        table = self.query_one(DataTable)
        results = [(name, objective, dataset, Run(path).eval_results())
                   for name, path, objective, dataset in self.runs]
        results = [(n, o, d, r) for n, o, d, r in results if r is not None and r.scores]
        # The columns of the metrics some run in view has (BetaVAE always: the paper's rows).
        columns = [(key, label) for key, label in SCORE_COLUMNS if key == "betavae"
                   or any(key in r.scores for *_, r in results)]
        table.add_columns("run", "objective", "dataset", "iter",
                          *(label for _, label in columns))
        table.fixed_columns = 1
        scored = 0
        fast_any = exact_any = False
        for name, objective, dataset, result in results:
            scores = result.scores
            scored += 1
            fast_any = fast_any or bool(result.fast)
            exact_any = exact_any or bool(result.exact)
            marks = ("*" if result.fast else "") + ("†" if result.exact else "")
            table.add_row(_cut(name, NAME_WIDTH), _cut(objective, 10),
                          _cut(dataset, DATASET_WIDTH),
                          Text(f"{_iters(result.iteration)}{marks}", justify="right"),
                          *(_score(scores.get(key)) for key, _ in columns))
        for label, value in paper_betavae().items():
            table.add_row(Text(_cut(label, NAME_WIDTH).plain, style="italic"),
                          Text("paper", style="dim italic"), "dSprites", "",
                          _score(value), *([""] * (len(columns) - 1)))
        note = (f"{scored} of {len(self.runs)} runs in view have scores"
                if scored else "no run in view has scores yet: 'bvae eval RUN' writes them")
        if fast_any:
            note += " · * fast eval"
        if exact_any:  # the default DCI reads differently (histogram trees): say which is which
            note += " · † exact eval"
        if any(key in ("modularity", "explicitness") for key, _ in columns):
            note += " · Mod: modularity, Expl: explicitness"
        self.query_one("#scores-note", Static).update(
            note + " · paper: Higgins et al. 2017, BetaVAE metric on dSprites")

    def action_close(self) -> None:
        self.dismiss(None)
