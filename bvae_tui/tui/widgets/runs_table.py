"""The runs table: one row per run (and per sweep, which unfolds to its members), updated in
place so the cursor stays put.

Every cell that shows something read from a run or sweep file is a Text made by
:func:`~bvae_tui.safe_text.as_text`: a DataTable parses a str cell as markup, and a name, dataset
or error may hold brackets or escape sequences."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable

from bvae_tui.safe_text import as_text, plain
from bvae_tui.styles import state_style
from bvae_tui.tui.naming import fit_all
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
# Which columns stay when the terminal is narrow, most wanted first: what tells runs apart and
# how far they got, then what they are, then how they did. The note (last) takes what is left.
PRIORITY = ("name", "state", "iter", "objective", "scores", "loss", "dataset", "started",
            "duration", "kl")
NAME_MIN = 16  # the name column never gets narrower than this (while the screen allows)
NAME_MAX = 40
NOTE_MIN = 8
PADDING = 2  # a DataTable cell's padding, both sides together


def state_text(state: str) -> Text:
    return as_text(state, state_style(state))


MARK = "● "  # before the name of a run marked for comparison
Row = RunRow | SweepRow


def key_of(row: Row) -> str:
    """A row's key in the table: the run id, or ``sweep:<id>``."""
    return row.key if isinstance(row, SweepRow) else row.id


def name_cell(row: RunRow, marked: bool = False, shown: str | None = None) -> Text:
    """The name cell; ``shown``: the name as cut to the column (see :func:`fit_all`)."""
    name = as_text(plain(row.name) if shown is None else shown,
                   "bold" if row.state == "running" else "")
    return Text.assemble((MARK, "bold magenta"), name) if marked else name


def choose_columns(width: int, natural: dict[str, int]) -> tuple[list[str], int]:
    """The columns that fit in ``width`` (in :data:`COLUMNS` order) and the name column's
    width. ``natural``: each column's widest cell. The name gets at least :data:`NAME_MIN`,
    state, progress and objective come next, then the name grows to its full width (up to
    :data:`NAME_MAX`), then the rest by :data:`PRIORITY`; a column that does not fit whole is
    left out rather than cut (the details line under the table shows everything)."""
    name_full = min(NAME_MAX, natural.get("name", 0))
    name_w = min(name_full, NAME_MIN)
    used = name_w + PADDING
    chosen = {"name"}

    def add(key: str) -> None:
        nonlocal used
        need = natural.get(key, 0) + PADDING
        if key not in chosen and used + need <= width:
            chosen.add(key)
            used += need

    for key in ("state", "iter", "objective"):
        add(key)
    grow = max(0, min(name_full - name_w, width - used))
    name_w, used = name_w + grow, used + grow
    for key in PRIORITY:
        add(key)
    if natural.get("note", 0) and width - used >= NOTE_MIN + PADDING:
        chosen.add("note")
    return [key for key, _ in COLUMNS if key in chosen], name_w


def cells(row: Row, flag: bool = False, shown: str | None = None) -> list[Text | str]:
    """The table cells of a row, in :data:`COLUMNS` order; ``flag``: the run is marked, the
    sweep unfolded; ``shown``: the name as cut to its column."""
    if isinstance(row, SweepRow):
        return sweep_cells(row, flag, shown)
    source = SOURCE_SHORT.get(row.source, row.source)
    dataset = f"{row.dataset} ({source})" if source else row.dataset
    pct = f" {100 * row.iteration // row.total:>3d}%" if row.total else ""
    note = _cut(plain(row.error), 60)
    return [
        name_cell(row, flag, shown),
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


def sweep_name(row: SweepRow, expanded: bool) -> str:
    return f"{'▾' if expanded else '▸'} {plain(row.name)}"


def sweep_cells(row: SweepRow, expanded: bool, shown: str | None = None) -> list[Text | str]:
    """A sweep's line: its name with a fold mark, its state, members done and how far the
    iterations of all members together got, the grid's axes."""
    pct = f" {100 * row.iteration // row.total:>3d}%" if row.total else ""
    note = _cut(plain(row.error or row.counts_text), 60)
    return [
        as_text(sweep_name(row, expanded) if shown is None else shown, "bold"),
        state_text(row.state),
        Text(f"{row.finished}/{row.members} done{pct}", justify="right"),
        Text("-", style="dim", justify="right"),
        Text("-", style="dim", justify="right"),
        as_text(f"sweep: {row.axes}"),
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
    """A DataTable keyed by run id; :meth:`show` diffs against what is on screen.

    Which columns show depends on the width (:func:`choose_columns`): on a resize, or when a
    cell grows past its column, the table is built again with the columns that fit."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self.rows_shown: dict[str, Row] = {}
        self._order: list[str] = []
        self._rows: list[Row] = []
        self._layout: tuple[list[str], int] = ([], 0)
        self._names: dict[str, str] = {}  # key -> the name as cut to its column
        self.marked: set[str] = set()  # run ids marked for comparison
        self.expanded: set[str] = set()  # keys of the sweep rows shown unfolded

    @property
    def columns_shown(self) -> list[str]:
        """The keys of the columns on screen now (the others did not fit)."""
        return list(self._layout[0])

    def redraw(self) -> None:
        """Build every row again at the next :meth:`show` (a sweep was folded or unfolded)."""
        self._order = []

    def on_resize(self) -> None:
        if self._rows:
            self.show(self._rows)

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

    def _width(self) -> int:
        width = self.size.width or (self.app.size.width if self.is_attached else 80)
        return max(20, width - 2)  # room for the vertical scrollbar

    def _full_name(self, row: Row) -> str:
        return sweep_name(row, key_of(row) in self.expanded) if isinstance(row, SweepRow) \
            else plain(row.name)

    def _cells(self, row: Row) -> list[Text | str]:
        key = key_of(row)
        return cells(row, self.flag(key), self._names.get(key))

    def show(self, rows: list[Row]) -> None:
        self._rows = list(rows)
        order = [key_of(r) for r in rows]
        full = [self._full_name(r) for r in rows]
        natural = {key: cell_len(label) for key, label in COLUMNS}
        for row in rows:
            for (column, _), cell in zip(COLUMNS, cells(row, self.flag(key_of(row))),
                                         strict=True):
                natural[column] = max(natural[column], cell_len(str(cell)))
        natural["name"] = max([cell_len("name"), *map(len, full)]) + (len(MARK) if self.marked
                                                                       else 0)
        layout = choose_columns(self._width(), natural)
        name_w = layout[1] - (len(MARK) if self.marked else 0)
        names = dict(zip(order, fit_all(full, name_w), strict=True))
        if order != self._order or layout != self._layout or names != self._names:
            selected = self.selected_id
            self._names, self._layout = names, layout
            self.clear(columns=True)
            for key in layout[0]:
                label = dict(COLUMNS)[key]
                self.add_column(label, key=key, width=layout[1] if key == "name" else None)
            for row in rows:
                self.add_row(*self._pick(self._cells(row)), key=key_of(row))
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
            new_cells = self._cells(row)
            old_cells = self._cells(old) if old else [None] * len(COLUMNS)
            for (column, _), new, prev in zip(COLUMNS, new_cells, old_cells, strict=True):
                if column not in layout[0]:
                    continue
                if str(new) != str(prev) or (isinstance(new, Text) and isinstance(prev, Text)
                                             and new.style != prev.style):
                    self.update_cell(key, column, new, update_width=column != "name")
            self.rows_shown[key] = row

    def _pick(self, row_cells: list[Text | str]) -> list[Text | str]:
        """The cells of the columns shown, in their order."""
        shown = set(self._layout[0])
        return [c for (key, _), c in zip(COLUMNS, row_cells, strict=True) if key in shown]

    def flag(self, key: str) -> bool:
        """A run's mark for comparison, a sweep's unfolded state (their keys never collide)."""
        return key in self.marked or key in self.expanded

    def set_marks(self, marked: set[str]) -> None:
        """Show ``marked`` (run ids) as marked, updating only the names that change."""
        changed = (self.marked ^ marked) & set(self.rows_shown)
        first_or_last = bool(self.marked) != bool(marked)  # the name column makes room
        self.marked = set(marked)
        if first_or_last and self._rows:
            self.show(self._rows)
            return
        for run_id in changed:
            row = self.rows_shown[run_id]
            if isinstance(row, RunRow):
                self.update_cell(run_id, "name", name_cell(row, run_id in marked,
                                                           self._names.get(run_id)))
