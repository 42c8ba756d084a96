"""Sweep screen: the members as a grid (rows: the first swept field; columns: the second), and the
queue: which device each running member has and what is waiting."""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from bvae_tui.engine.runs.files import FileCache
from bvae_tui.engine.runs.records import RunSummary
from bvae_tui.engine.runs.sweeps.store import Sweep
from bvae_tui.engine.runs.sweeps.table import SCORES, default_score
from bvae_tui.errors import UserError
from bvae_tui.safe_text import as_text, plain
from bvae_tui.styles import state_style
from bvae_tui.tui.messages import RunGone, SweepUpdated, WatchError
from bvae_tui.tui.sweep_data import SweepView, cell_label, read_sweep_view
from bvae_tui.tui.widgets.fit_footer import FitFooter

POLL_SECONDS = 1.0

HELP = """
# Sweep

The members of one sweep as a grid: rows are the values of the first swept field (and of any
field after the second), columns those of the second (often the seeds). Each cell is a member:
its state (or progress while it trains) and the chosen score. Under the grid, the queue: the
device of each running member and the members still waiting for a slot.

| key | action |
|---|---|
| arrows | move between members |
| `enter` | open the monitor of the member |
| `s` / `r` | stop / resume the member (a waiting member leaves or rejoins the queue) |
| `S` / `R` | stop / resume the whole sweep (running members checkpoint first) |
| `c` | cycle the score shown: loss, betavae, factorvae, mig |
| `v` | compare the members: curves and scores grouped by the swept fields but the seed |
| `E` | evaluate every member in the background, fast or full (those training are left out) |
| `esc` | back to the runs |
"""


class SweepScreen(Screen):
    HELP = HELP
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("enter", "open_member", "Monitor", show=True),
        Binding("s", "stop_member", "Stop"),
        Binding("r", "resume_member", "Resume"),
        Binding("S", "stop_sweep", "Stop all"),
        Binding("R", "resume_sweep", "Resume all"),
        Binding("c", "cycle_score", "Score"),
        Binding("v", "compare", "Compare"),
        Binding("E", "evaluate", "Evaluate", show=False),  # in ? and the palette
    ]

    def __init__(self, sweep_path: Path) -> None:
        super().__init__()
        self.sweep = Sweep(sweep_path)
        self.view: SweepView | None = None
        self.score: str | None = None  # None: the default (a metric once members have one)
        self._shape: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="sweep-title", classes="topbar")
        yield DataTable(id="sweep-grid", cursor_type="cell", zebra_stripes=True)
        yield Static(id="sweep-queue", classes="details")
        yield Static(id="sweep-details", classes="hint")
        yield FitFooter()

    def on_mount(self) -> None:
        self.query_one("#sweep-title", Static).update(as_text(f"Sweep {self.sweep.id}", "bold"))
        self.query_one(DataTable).focus()
        self.watch_sweep()

    # Background polling -------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="sweep-poll")
    def watch_sweep(self) -> None:
        worker = get_current_worker()
        caches: dict[str, FileCache] = {}
        last_error = ""
        while not worker.is_cancelled:
            if not self.sweep.path.is_dir():
                self.post_message(RunGone(str(self.sweep.path)))
                return
            try:
                self.post_message(SweepUpdated(str(self.sweep.path),
                                               read_sweep_view(self.sweep, caches)))
            except (UserError, OSError) as exc:
                if str(exc) != last_error:
                    last_error = str(exc)
                    self.post_message(WatchError(str(self.sweep.path), str(exc)))
            deadline = time.monotonic() + POLL_SECONDS
            while time.monotonic() < deadline and not worker.is_cancelled:
                time.sleep(0.05)

    def on_sweep_updated(self, message: SweepUpdated) -> None:
        self.view = message.view
        self._show()

    def on_watch_error(self, message: WatchError) -> None:
        self.notify(message.error, severity="error")

    def on_run_gone(self, message: RunGone) -> None:
        self.notify(f"sweep {self.sweep.id} was deleted", severity="warning")
        self.app.pop_screen()

    # View -------------------------------------------------------------------------------------
    @property
    def score_name(self) -> str:
        if self.score is not None:
            return self.score
        return default_score(self.view.grid) if self.view else "loss"

    def _show(self) -> None:
        view = self.view
        if view is None:
            return
        grid = view.grid
        # Names, devices, swept values and errors come from the sweep's files: plain() text
        # (and Text, never a str, for the DataTable: it would read a str as markup).
        title = Text.assemble(("Sweep ", "bold"), (plain(view.name), "bold"), "  ",
                              (plain(view.state), state_style(view.state)),
                              (plain(f"  {view.where} · {view.counts_text} · cells: "
                                     f"{self.score_name}"), "dim"))
        if view.error:
            title.append("\n" + plain(view.error), style=state_style(view.state))
        self.query_one("#sweep-title", Static).update(title)
        table = self.query_one(DataTable)
        shape = (tuple(grid.row_axes), grid.col_axis, len(grid.rows), len(grid.cols))
        if shape != self._shape:
            self._shape = shape
            table.clear(columns=True)
            table.add_column(as_text(" ".join(grid.row_axes) or "member"), key="label")
            for j in range(len(grid.cols)):
                table.add_column(as_text(grid.col_label(j) or "state"), key=f"c{j}")
            for i in range(len(grid.rows)):
                table.add_row(as_text(grid.row_label(i), "bold"),
                              *(self._cell(i, j) for j in range(len(grid.cols))), key=f"r{i}")
        else:
            for i in range(len(grid.rows)):
                for j in range(len(grid.cols)):
                    table.update_cell(f"r{i}", f"c{j}", self._cell(i, j))
        self._show_queue()
        self._show_details()

    def _cell(self, i: int, j: int) -> Text:
        assert self.view is not None
        return cell_label(self.view.grid.cells.get((i, j)), self.score_name)

    def _show_queue(self) -> None:
        assert self.view is not None
        view = self.view
        members = view.grid.members()
        text = Text()
        placed = view.placements
        for m in members:
            if m.state == "running" or (m.state == "queued" and m.id in placed):
                device = placed.get(m.id) or m.device or "?"
                what = f"{m.iteration}/{m.total}" if m.state == "running" else "starting"
                said = f"  {view.slurm[m.id]}" if m.id in view.slurm else ""
                text.append(plain(f"{view.place(m.id)} on {device}  {what}{said}") + "\n",
                            style=state_style(m.state))
        waiting = [view.place(m.id) + (f" ({view.slurm[m.id]})" if m.id in view.slurm else "")
                   for m in members if m.state == "queued" and m.id not in placed]
        if waiting:
            shown = ", ".join(waiting[:4]) + (f" (+{len(waiting) - 4})" if len(waiting) > 4
                                              else "")
            text.append(plain(f"waiting: {shown}"), style=state_style("queued"))
        self.query_one("#sweep-queue", Static).update(text or Text("nothing running or "
                                                                   "waiting", style="dim"))

    def selected_member(self) -> RunSummary | None:
        if self.view is None:
            return None
        coord = self.query_one(DataTable).cursor_coordinate
        return self.view.grid.cells.get((coord.row, coord.column - 1))

    def _show_details(self) -> None:
        member = self.selected_member()
        details = self.query_one("#sweep-details", Static)
        if member is None:
            details.update("")
            return
        text = Text.assemble((plain(member.id), "bold"), "  ",
                             (plain(member.state), state_style(member.state)),
                             f"  {member.iteration}/{member.total}")
        if member.device:
            text.append(f"  on {plain(member.device)}", style="dim")
        if member.note:
            text.append(f"  {plain(member.note)}", style=state_style(member.state))
        details.update(text)

    def on_data_table_cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        self._show_details()

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        self.action_open_member()

    # Actions ----------------------------------------------------------------------------------
    def _member_or_warn(self) -> RunSummary | None:
        member = self.selected_member()
        if member is None:
            self.notify("no member here: move to a cell of the grid", severity="warning")
        return member

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_open_member(self) -> None:
        if member := self._member_or_warn():
            self.app.open_monitor(Path(member.path))

    def action_compare(self) -> None:
        from bvae_tui.tui.screens.compare import CompareScreen

        members = [run.path for run in self.sweep.members() if run.path.is_dir()]
        if not members:
            self.notify("no member run directories yet", severity="warning")
            return
        self.app.push_screen(CompareScreen(members))

    def action_evaluate(self) -> None:
        members = [run.path for run in self.sweep.members() if run.path.is_dir()]
        if not members:
            self.notify("no member run directories yet", severity="warning")
            return
        self.app.evaluate_runs(members, f"the {len(members)} members of {self.sweep.id}")

    def action_stop_member(self) -> None:
        if member := self._member_or_warn():
            self.app.stop_run(Path(member.path))

    def action_resume_member(self) -> None:
        if member := self._member_or_warn():
            self.app.resume_member(Path(member.path))

    def action_stop_sweep(self) -> None:
        self.app.stop_sweep(self.sweep.path)

    def action_resume_sweep(self) -> None:
        self.app.resume_sweep(self.sweep.path)

    def action_cycle_score(self) -> None:
        self.score = SCORES[(SCORES.index(self.score_name) + 1) % len(SCORES)]
        self._show()
