"""The runs table: one row per run, updated in place so the cursor stays put."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from bvae_tui.styles import state_style
from bvae_tui.tui.run_data import RunRow, fmt_duration, fmt_num, fmt_time

COLUMNS = (
    ("name", "name"),
    ("state", "state"),
    ("iter", "iteration"),
    ("loss", "loss"),
    ("kl", "KL"),
    ("objective", "objective"),
    ("dataset", "dataset"),
    ("scores", "scores"),
    ("started", "started"),
    ("duration", "duration"),
    ("note", "note"),
)
SOURCE_SHORT = {"real": "real", "procedural": "proc", "files": "files"}


def state_text(state: str) -> Text:
    return Text(state, style=state_style(state))


MARK = "● "  # before the name of a run marked for comparison


def name_cell(row: RunRow, marked: bool = False) -> Text:
    name = Text(row.name[:28], style="bold" if row.state == "running" else "")
    return Text.assemble((MARK, "bold magenta"), name) if marked else name


def cells(row: RunRow, marked: bool = False) -> list[Text | str]:
    """The table cells of a row, in :data:`COLUMNS` order."""
    source = SOURCE_SHORT.get(row.source, row.source)
    dataset = f"{row.dataset} ({source})" if source else row.dataset
    pct = f" {100 * row.iteration // row.total:>3d}%" if row.total else ""
    note = row.error if len(row.error) <= 60 else row.error[:59] + "…"
    return [
        name_cell(row, marked),
        state_text(row.state),
        Text(f"{row.progress}{pct}", justify="right"),
        Text(fmt_num(row.loss), justify="right"),
        Text(fmt_num(row.kl), justify="right"),
        row.objective,
        dataset,
        row.scores or Text("-", style="dim"),
        fmt_time(row.started),
        fmt_duration(row.duration),
        Text(note, style=state_style(row.state) if note else ""),
    ]


class RunsTable(DataTable):
    """A DataTable keyed by run id; :meth:`show` diffs against what is on screen."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self.rows_shown: dict[str, RunRow] = {}
        self._order: list[str] = []
        self.marked: set[str] = set()  # run ids marked for comparison

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @property
    def selected_id(self) -> str | None:
        if not self._order or self.cursor_row < 0 or self.cursor_row >= len(self._order):
            return None
        return self._order[self.cursor_row]

    def select(self, run_id: str) -> bool:
        """Put the cursor on ``run_id``; False when that run is not in the table (yet)."""
        if run_id not in self._order:
            return False
        self.move_cursor(row=self._order.index(run_id), animate=False)
        return True

    def show(self, rows: list[RunRow]) -> None:
        order = [r.id for r in rows]
        if order != self._order:
            selected = self.selected_id
            self.clear()
            for row in rows:
                self.add_row(*cells(row, row.id in self.marked), key=row.id)
            self._order = order
            self.rows_shown = {r.id: r for r in rows}
            if selected in order:
                self.move_cursor(row=order.index(selected), animate=False)
            return
        for row in rows:
            old = self.rows_shown.get(row.id)
            if old == row:
                continue
            marked = row.id in self.marked
            new_cells = cells(row, marked)
            old_cells = cells(old, marked) if old else [None] * len(COLUMNS)
            for (key, _), new, prev in zip(COLUMNS, new_cells, old_cells, strict=True):
                if str(new) != str(prev) or (isinstance(new, Text) and isinstance(prev, Text)
                                             and new.style != prev.style):
                    self.update_cell(row.id, key, new, update_width=True)
            self.rows_shown[row.id] = row

    def set_marks(self, marked: set[str]) -> None:
        """Show ``marked`` (run ids) as marked, updating only the names that change."""
        changed = (self.marked ^ marked) & set(self.rows_shown)
        self.marked = set(marked)
        for run_id in changed:
            self.update_cell(run_id, "name", name_cell(self.rows_shown[run_id],
                                                       run_id in marked), update_width=True)
