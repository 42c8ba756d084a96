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
from bvae_tui.tui.naming import fit_all


def _score(value: float | None) -> Text:
    if value is not None and math.isfinite(value):
        return Text(f"{value:.3f}", justify="right")
    return Text("-", style="dim", justify="right")


# eval.json's scores in column order; the run column stays when the table scrolls sideways.
SCORE_COLUMNS = (("betavae", "BV"), ("factorvae", "FV"), ("mig", "MIG"), ("dci", "DCI"),
                 ("sap", "SAP"), ("modularity", "Mod"), ("explicitness", "Expl"), ("udr", "UDR"))
NAME_MIN = 14  # the run column gets what the scores leave, never less than this
SCORE_WIDTH = 7  # "0.800" and the cell padding


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
            yield Static("Disentanglement scores", classes="title")
            yield DataTable(id="scores-table", cursor_type="row", zebra_stripes=True)
            yield Static(id="scores-note", classes="hint")

    def on_mount(self) -> None:
        # Sized for 80 columns: the run and its scores first (the run column fixed when
        # scrolling sideways), names cut keeping what tells them apart, objective and dataset
        # after the scores (in the title instead when every run shares them), and the paper's
        # numbers in the BV column of their own rows.
        table = self.query_one(DataTable)
        results = [(name, objective, dataset, Run(path).eval_results())
                   for name, path, objective, dataset in self.runs]
        results = [(n, o, d, r) for n, o, d, r in results if r is not None and r.scores]
        # The columns of the metrics some run in view has (BetaVAE always: the paper's rows).
        columns = [(key, label) for key, label in SCORE_COLUMNS if key == "betavae"
                   or any(key in r.scores for *_, r in results)]
        objectives = {plain(o) for _, o, _, _ in results}
        datasets = {plain(d) for _, _, d, _ in results}
        extra = [label for label, values in (("objective", objectives), ("dataset", datasets))
                 if len(values) > 1]
        papers = list(paper_betavae().items())
        # The dialog's border and the table's scrollbar take 4 columns.
        inner = min(self.app.size.width, 90) - 4
        name_w = max(NAME_MIN, inner - 8 - SCORE_WIDTH * len(columns) - 2)
        names = fit_all([n for n, *_ in results] + [label for label, _ in papers], name_w)
        table.add_column("run", width=max(map(len, names), default=3))
        table.add_columns("iter", *(label for _, label in columns), *extra)
        table.fixed_columns = 1
        scored = 0
        fast_any = exact_any = False
        for (_, objective, dataset, result), name in zip(results, names, strict=False):
            scores = result.scores
            scored += 1
            fast_any = fast_any or bool(result.fast)
            exact_any = exact_any or bool(result.exact)
            marks = ("*" if result.fast else "") + ("†" if result.exact else "")
            shown = {"objective": objective, "dataset": dataset}
            table.add_row(as_text(name), Text(f"{_iters(result.iteration)}{marks}",
                                              justify="right"),
                          *(_score(scores.get(key)) for key, _ in columns),
                          *(as_text(shown[label]) for label in extra))
        for (_, value), name in zip(papers, names[len(results):], strict=True):
            shown = {"objective": "paper", "dataset": "dSprites"}
            table.add_row(Text(name, style="italic"), Text("paper", style="dim italic"),
                          _score(value),
                          *([""] * (len(columns) - 1)),
                          *(Text(shown[label], style="dim italic") for label in extra))
        shared = [plain(next(iter(values))) for label, values in
                  (("objective", objectives), ("dataset", datasets))
                  if len(values) == 1 and label not in extra]
        title = self.query_one(".title", Static)
        title.update(Text.assemble(("Disentanglement scores", "bold"),
                                   (f"  {' · '.join(shared)}" if shared else "", "cyan"),
                                   ("  BV: BetaVAE, FV: FactorVAE · esc closes", "dim")))
        table.focus()  # arrows scroll it, up and down and sideways
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
