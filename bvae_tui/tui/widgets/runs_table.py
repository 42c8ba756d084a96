"""The runs table: one row per run (and per sweep, which unfolds to its members), updated in
place so the cursor stays put.

Every cell that shows something read from a run or sweep file is a Text made by
:func:`~bvae_tui.safe_text.as_text`: a DataTable parses a str cell as markup, and a name, dataset
or error may hold brackets or escape sequences."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from bvae_tui.safe_text import as_text, plain
from bvae_tui.styles import state_style
from bvae_tui.tui.run_data import RunRow, fmt_duration, fmt_num, fmt_time
from bvae_tui.tui.sweep_data import SweepRow

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
    return as_text(state, state_style(state))


MARK = "● "  # before the name of a run marked for comparison
Row = RunRow | SweepRow


def key_of(row: Row) -> str:
    """A row's key in the table: the run id, or ``sweep:<id>``."""
    return row.key if isinstance(row, SweepRow) else row.id


def name_cell(row: RunRow, marked: bool = False) -> Text:
    name = as_text(plain(row.name)[:28], "bold" if row.state == "running" else "")
    return Text.assemble((MARK, "bold magenta"), name) if marked else name


def cells(row: Row, flag: bool = False) -> list[Text | str]:
    """The table cells of a row, in :data:`COLUMNS` order; ``flag``: the run is marked, the
    sweep unfolded."""
    if isinstance(row, SweepRow):
        return sweep_cells(row, flag)
    source = SOURCE_SHORT.get(row.source, row.source)
    dataset = f"{row.dataset} ({source})" if source else row.dataset
    pct = f" {100 * row.iteration // row.total:>3d}%" if row.total else ""
    note = _cut(plain(row.error), 60)
    return [
        name_cell(row, flag),
        state_text(row.state),
        Text(f"{row.progress}{pct}", justify="right"),
        Text(fmt_num(row.loss), justify="right"),
        Text(fmt_num(row.kl), justify="right"),
        as_text(row.objective),
        as_text(dataset),
        as_text(row.scores) if row.scores else Text("-", style="dim"),
        fmt_time(row.started),
        fmt_duration(row.duration),
        Text(note, style=state_style(row.state) if note else ""),
    ]


def sweep_cells(row: SweepRow, expanded: bool) -> list[Text | str]:
    """A sweep's line: its name with a fold mark, its state, members done, the grid's axes."""
    mark = "▾" if expanded else "▸"
    pct = f" {100 * row.iteration // row.total:>3d}%" if row.total else ""
    note = _cut(plain(row.error or row.counts_text), 60)
    return [
        as_text(f"{mark} {plain(row.name)}"[:28], "bold"),
        state_text(row.state),
        Text(f"{row.finished}/{row.members}{pct}", justify="right"),
        Text("-", style="dim", justify="right"),
        Text("-", style="dim", justify="right"),
        as_text(f"sweep {row.axes}"),
        as_text(row.dataset),
        Text("-", style="dim"),
        fmt_time(row.started),
        fmt_duration(row.duration),
        Text(note, style=state_style(row.state) if row.error else "dim"),
    ]


def _cut(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the last one an ellipsis when cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


class RunsTable(DataTable):
    """A DataTable keyed by run id; :meth:`show` diffs against what is on screen."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self.rows_shown: dict[str, Row] = {}
        self._order: list[str] = []
        self.marked: set[str] = set()  # run ids marked for comparison
        self.expanded: set[str] = set()  # keys of the sweep rows shown unfolded

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def redraw(self) -> None:
        """Build every row again at the next :meth:`show` (a sweep was folded or unfolded)."""
        self._order = []

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

    def show(self, rows: list[Row]) -> None:
        order = [key_of(r) for r in rows]
        if order != self._order:
            selected = self.selected_id
            self.clear()
            for row in rows:
                self.add_row(*cells(row, self.flag(key_of(row))), key=key_of(row))
            self._order = order
            self.rows_shown = {key_of(r): r for r in rows}
            if selected in order:
                self.move_cursor(row=order.index(selected), animate=False)
            return
        for row in rows:
            key = key_of(row)
            old = self.rows_shown.get(key)
            if old == row:
                continue
            new_cells = cells(row, self.flag(key))
            old_cells = cells(old, self.flag(key)) if old else [None] * len(COLUMNS)
            for (column, _), new, prev in zip(COLUMNS, new_cells, old_cells, strict=True):
                if str(new) != str(prev) or (isinstance(new, Text) and isinstance(prev, Text)
                                             and new.style != prev.style):
                    self.update_cell(key, column, new, update_width=True)
            self.rows_shown[key] = row

    def flag(self, key: str) -> bool:
        """A run's mark for comparison, a sweep's unfolded state (their keys never collide)."""
        return key in self.marked or key in self.expanded

    def set_marks(self, marked: set[str]) -> None:
        """Show ``marked`` (run ids) as marked, updating only the names that change."""
        changed = (self.marked ^ marked) & set(self.rows_shown)
        self.marked = set(marked)
        for run_id in changed:
            row = self.rows_shown[run_id]
            if isinstance(row, RunRow):
                self.update_cell(run_id, "name", name_cell(row, run_id in marked),
                                 update_width=True)
