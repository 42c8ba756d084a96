"""Runs screen (home): every run under the runs dir, live, with sort and filter."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import get_current_worker

from bvae_tui.engine.runs.files import FileCache
from bvae_tui.engine.runs.records import STATES
from bvae_tui.safe_text import plain
from bvae_tui.styles import state_style
from bvae_tui.tui.messages import RunsUpdated, WatchError
from bvae_tui.tui.run_data import RunRow, RunsPoller, fmt_duration
from bvae_tui.tui.sweep_data import SweepRow, sweep_rows
from bvae_tui.tui.widgets.runs_table import RunsTable

POLL_SECONDS = 1.0  # while this screen is shown
POLL_HIDDEN_SECONDS = 5.0  # while a monitor or form covers it
SORTS = ("started", "name", "state", "progress", "loss")

HELP = """
# Runs

Every run under the runs dir, refreshed every second; runs started from the CLI show up too.

| key | action |
|---|---|
| `n` | new run (form) |
| `enter` | open the monitor of the selected run |
| `s` | stop the selected run (it writes a checkpoint first) |
| `r` | resume a stopped, failed or lost run from its last checkpoint |
| `e` | export a traversal GIF |
| `x` | explore the run's model by hand: move latents, step factors (any run with a checkpoint) |
| `E` | evaluate in the background, fast or full: the marked runs, else the sweep or run selected |
| `d` | delete the run (asks first) |
| `space` | (un)mark the run for comparison (● before its name), cursor down a row; sweep: fold |
| `m` | mark every run in view (again: unmark them) |
| `c` | compare the marked runs (none marked: the sweep selected, else the runs in view) |
| `p` | the scores of the runs in view beside the paper's |
| `/` | filter by text (esc returns to the table) |
| `f` / `g` | cycle the state / dataset filter |
| `o` / `O` | cycle the sort column / reverse it |

States: **running**, **queued** (starting, or waiting in a sweep for a slot), **finished**,
**stopped**, **failed** (reason in the note column), **lost** (the worker died without saying
so: resume it).

An evaluation started with `E` (or `bvae eval RUN --detach`) runs in its own process, so it goes
on when the app closes: the note column says `evaluating 3/7 metrics` (or why it failed; the
previous eval.json is kept), and the scores column shows the result.

**Sweeps** (`▸ name`) group their members: progress is members finished / members. On a sweep's
line `enter` opens the sweep screen (the grid and the queue), and `s`, `r`, `d` stop, resume and
delete the whole sweep.
"""


def sort_key(name: str):
    def key(row: RunRow | SweepRow):
        if name == "name":
            return row.name.lower()
        if name == "state":
            return (STATES.index(row.state) if row.state in STATES else 99, -(row.started or 0))
        if name == "progress":
            return row.iteration / row.total if row.total else 0.0
        if name == "loss":
            return row.loss if row.loss is not None else float("inf")
        return row.started or 0.0

    return key


class RunsScreen(Screen):
    HELP = HELP
    BINDINGS = [
        Binding("n", "new_run", "New"),
        Binding("enter", "open_monitor", "Monitor", show=True),
        Binding("s", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("e", "export", "Export", show=False),  # in ? and the palette: x took its place
        Binding("x", "explore", "Explore"),
        Binding("E", "evaluate", "Evaluate", show=False),  # in ? and the palette
        Binding("d", "delete", "Delete", show=False),  # the footer keeps to 80 columns
        Binding("space", "mark_or_fold", "Mark", show=False),
        Binding("m", "mark_view", "Mark all", show=False),
        Binding("c", "compare", "Compare"),
        Binding("p", "scores", "Paper", show=False),
        Binding("slash", "focus_filter", "Filter", show=False),
        Binding("f", "cycle_state", "State", show=False),
        Binding("g", "cycle_dataset", "Dataset", show=False),
        Binding("o", "cycle_sort", "Sort", show=False),
        Binding("O", "reverse_sort", "Reverse", show=False),
        Binding("escape", "focus_table", "Table", show=False),
    ]

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.rows: list[RunRow] = []
        self.sweeps: list[SweepRow] = []
        self.loaded = False
        self.state_filter = "all"
        self.dataset_filter = "all"
        self.text_filter = ""
        self.sort = "started"
        self.reverse = True
        self._poll_now = False
        self._want: str | None = None  # a run to put the cursor on once it shows up
        self.marked: set[str] = set()  # run ids marked for comparison

    def compose(self) -> ComposeResult:
        yield Static(id="runs-title", classes="topbar")
        yield Input(placeholder="/ filter by text: name, dataset, state, objective…",
                    id="runs-filter", compact=True)
        yield Static(id="runs-bar", classes="bar")
        yield RunsTable(id="runs-table")
        yield Static(id="runs-details", classes="details")
        yield Footer()

    def on_mount(self) -> None:
        self._update_bar()
        self._update_title()
        self.query_one(RunsTable).focus()
        self.poll_runs()

    # Background polling -------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="runs-poll")
    def poll_runs(self) -> None:
        worker = get_current_worker()
        poller = RunsPoller(self.root)
        sweep_caches: dict[Path, FileCache] = {}
        last_error = ""
        while not worker.is_cancelled:
            try:
                rows = poller.poll()
                sweeps = sweep_rows(self.root, rows, sweep_caches)
            except Exception as exc:  # noqa: BLE001 - keep polling; show why the list is stale
                rows = None
                if str(exc) != last_error:
                    last_error = str(exc)
                    self.post_message(WatchError(str(self.root), f"cannot list runs: {exc}"))
            if rows is not None:
                self.post_message(RunsUpdated(str(self.root), rows, sweeps))
            deadline = time.monotonic() + (POLL_SECONDS if self.is_current
                                           else POLL_HIDDEN_SECONDS)
            while time.monotonic() < deadline and not worker.is_cancelled:
                if self._poll_now:
                    self._poll_now = False
                    break
                time.sleep(0.05)

    def refresh_now(self) -> None:
        """Poll again at once (after an action changed something)."""
        self._poll_now = True

    def on_watch_error(self, message: WatchError) -> None:
        self.notify(message.error, severity="error")

    def on_runs_updated(self, message: RunsUpdated) -> None:
        self.rows = message.rows
        self.sweeps = message.sweeps
        self.loaded = True
        if self.marked - {r.id for r in self.rows}:  # marked runs deleted meanwhile
            self._set_marks(self.marked & {r.id for r in self.rows})
        self._show()

    # View -------------------------------------------------------------------------------------
    def visible_rows(self) -> list[RunRow]:
        rows = [r for r in self.rows
                if (self.state_filter == "all" or r.state == self.state_filter)
                and (self.dataset_filter == "all"
                     or self.dataset_filter in (r.dataset, r.source))
                and (not self.text_filter or r.matches(self.text_filter))]
        rows.sort(key=sort_key(self.sort), reverse=self.reverse)
        return rows

    def table_rows(self) -> list[RunRow | SweepRow]:
        """What the table shows: the runs in view, each sweep's members under its own line
        (while unfolded), sweeps sorted among the runs by the same keys."""
        runs = self.visible_rows()
        known = {s.id: s for s in self.sweeps}
        members: dict[str, list[RunRow]] = {}
        top: list[RunRow | SweepRow] = []
        for row in runs:
            if row.sweep in known:
                members.setdefault(row.sweep, []).append(row)
            else:
                top.append(row)
        filtering = self.text_filter or self.state_filter != "all" or self.dataset_filter != "all"
        top += [s for s in self.sweeps if s.id in members or not filtering
                or (self.text_filter and s.matches(self.text_filter))]
        top.sort(key=sort_key(self.sort), reverse=self.reverse)
        expanded = self.query_one(RunsTable).expanded
        out: list[RunRow | SweepRow] = []
        for row in top:
            out.append(row)
            if isinstance(row, SweepRow) and row.key in expanded:
                order = {run_id: i for i, run_id in enumerate(row.member_ids)}
                shown = sorted(members.get(row.id, []), key=lambda m: order.get(m.id, 0))
                out += [replace(m, name=f"  {row.place(m)}") for m in shown]
        return out

    def select_run(self, run_id: str) -> None:
        """Put the cursor on ``run_id`` (a run just launched or opened), now or once the next
        poll lists it, so that the keys act on that run."""
        self._want = run_id
        if self.is_mounted and self.query_one(RunsTable).select(run_id):
            self._want = None
            self._update_details()
        else:
            self.refresh_now()

    def _show(self) -> None:
        table = self.query_one(RunsTable)
        table.show(self.table_rows())
        if self._want is not None and table.select(self._want):
            self._want = None
        self._update_title()
        self._update_details()

    def _update_title(self) -> None:
        counts: dict[str, int] = {}
        for r in self.rows:
            counts[r.state] = counts.get(r.state, 0) + 1
        text = Text()
        text.append("bvae-tui", style="bold")
        text.append(f"  runs in {plain(self.root)}", style="dim")
        if self.loaded and not self.rows:
            text.append("  — no runs yet: press n to start one", style="italic")
        for state in STATES:
            if counts.get(state):
                text.append(f"  {counts[state]} {state}", style=state_style(state))
        self.query_one("#runs-title", Static).update(text)

    def _update_bar(self) -> None:
        arrow = "↓" if self.reverse else "↑"
        text = Text.assemble(
            ("state ", "dim"), (self.state_filter, "bold"), (" [f]  ", "dim"),
            ("dataset ", "dim"), (self.dataset_filter, "bold"), (" [g]  ", "dim"),
            ("sort ", "dim"), (f"{self.sort} {arrow}", "bold"), (" [o/O]  ", "dim"),
            ("marked ", "dim"), (str(len(self.marked)), "bold magenta" if self.marked else "bold"),
            (" [space/m]", "dim"),
        )
        self.query_one("#runs-bar", Static).update(text)

    def _update_details(self) -> None:
        row = self.selected_row()
        details = self.query_one("#runs-details", Static)
        sweep = self.selected_sweep()
        # Ids, devices, scores and errors are read from files: plain() keeps them one line of
        # text (Text is never parsed as markup; control characters would reach the terminal).
        if sweep is not None:
            text = Text.assemble((plain(sweep.id), "bold"), "  ",
                                 (plain(sweep.state), state_style(sweep.state)),
                                 (plain(f"  {sweep.members} members ({sweep.axes}): "
                                        f"{sweep.counts_text}"), "dim"))
            if sweep.error:
                text.append("\n" + plain(sweep.error), style=state_style(sweep.state))
            details.update(text)
            return
        if row is None:
            if self.rows and not self.query_one(RunsTable).row_count:
                details.update(Text(plain(f"no runs match the filters ({self._filters_text()}): "
                                          "/ edits the text, f and g cycle state and dataset"),
                                    style="yellow"))
                return
            details.update(Text("no run selected" if self.rows else "", style="dim"))
            return
        text = Text()
        text.append(plain(row.id), style="bold")
        text.append("  ")
        text.append(plain(row.state), style=state_style(row.state))
        if row.device:
            text.append(f"  on {plain(row.device)}", style="dim")
        text.append(f"  {fmt_duration(row.duration)}", style="dim")
        if row.scores:  # beside the rest when it fits, else on a line of its own (no wrap)
            width = max(20, self.size.width - 2)
            text.append("  " if len(text) + 2 + len(row.scores) <= width else "\n")
            text.append(plain(row.scores), style="cyan")
        if row.error:
            text.append("\n")
            text.append(plain(row.error), style=state_style(row.state))
        exported = getattr(self.app, "exports", {}).get(row.id)
        if exported:
            text.append(f"\nexported: {plain(exported)}", style="green")
        details.update(text)

    def _filters_text(self) -> str:
        parts = [f"text '{self.text_filter}'"] if self.text_filter else []
        if self.state_filter != "all":
            parts.append(f"state {self.state_filter}")
        if self.dataset_filter != "all":
            parts.append(f"dataset {self.dataset_filter}")
        return ", ".join(parts)

    def selected_row(self) -> RunRow | None:
        run_id = self.query_one(RunsTable).selected_id
        return next((r for r in self.rows if r.id == run_id), None)

    def selected_sweep(self) -> SweepRow | None:
        key = self.query_one(RunsTable).selected_id
        return next((s for s in self.sweeps if s.key == key), None)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._update_details()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_monitor()

    # Filters and sort ---------------------------------------------------------------------------
    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "runs-filter":
            self.text_filter = event.value.strip()
            self._show()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_focus_table()

    def action_focus_filter(self) -> None:
        self.query_one("#runs-filter", Input).focus()

    def action_focus_table(self) -> None:
        self.query_one(RunsTable).focus()

    def action_cycle_state(self) -> None:
        self.state_filter = _cycle(["all", *STATES], self.state_filter)
        self._update_bar()
        self._show()

    def action_cycle_dataset(self) -> None:
        names = sorted({r.dataset for r in self.rows})
        self.dataset_filter = _cycle(["all", "real", "procedural", *names], self.dataset_filter)
        self._update_bar()
        self._show()

    def action_cycle_sort(self) -> None:
        self.sort = _cycle(list(SORTS), self.sort)
        self.reverse = self.sort in ("started", "progress")
        self._update_bar()
        self._show()

    def action_reverse_sort(self) -> None:
        self.reverse = not self.reverse
        self._update_bar()
        self._show()

    # Actions (carried out by the app, shared with the monitor and the command palette) ------------
    def _selected_or_warn(self) -> RunRow | None:
        row = self.selected_row()
        if row is None:
            sweep = self.selected_sweep() is not None
            self.notify("a sweep is selected: space unfolds it to its members" if sweep
                        else "no run selected", severity="warning")
        return row

    def action_mark_or_fold(self) -> None:
        """`space`: a sweep's line folds or unfolds, a run (a sweep's member too) is marked."""
        sweep = self.selected_sweep()
        if sweep is None:
            self.action_toggle_mark()
            return
        table = self.query_one(RunsTable)
        table.expanded ^= {sweep.key}
        table.redraw()
        self._show()
        table.select(sweep.key)

    def action_new_run(self) -> None:
        self.app.action_new_run()

    def action_scores(self) -> None:
        from bvae_tui.tui.screens.scores import ScoresScreen

        self.app.push_screen(ScoresScreen([(r.name, Path(r.path), r.objective, r.dataset)
                                           for r in self.visible_rows()]))

    # Marks and comparison ----------------------------------------------------------------------
    def _set_marks(self, marked: set[str]) -> None:
        self.marked = marked
        self.query_one(RunsTable).set_marks(marked)
        self._update_bar()

    def action_toggle_mark(self) -> None:
        row = self._selected_or_warn()
        if row is None:
            return
        self._set_marks(self.marked ^ {row.id})
        table = self.query_one(RunsTable)
        if table.cursor_row < table.row_count - 1:  # on to the next run, as file managers do
            table.move_cursor(row=table.cursor_row + 1, animate=False)

    def action_mark_view(self) -> None:
        shown = {r.id for r in self.visible_rows()}
        self._set_marks(self.marked - shown if shown <= self.marked else self.marked | shown)

    def action_compare(self) -> None:
        from bvae_tui.tui.screens.compare import CompareScreen

        rows = self.visible_rows()
        if self.marked:  # in the table's order, including marked runs the filter now hides
            rows = [r for r in sorted(self.rows, key=sort_key(self.sort), reverse=self.reverse)
                    if r.id in self.marked]
        elif sweep := self.selected_sweep():  # nothing marked, a sweep's line: its members
            rows = [r for r in self.rows if r.sweep == sweep.id]
        if not rows:
            self.notify("no runs to compare: mark some with space (or m for all in view)",
                        severity="warning")
            return
        self.app.push_screen(CompareScreen([Path(r.path) for r in rows]))

    def action_open_monitor(self) -> None:
        if sweep := self.selected_sweep():
            self.app.open_sweep(Path(sweep.path))
        elif row := self._selected_or_warn():
            self.app.open_monitor(Path(row.path))

    def action_stop(self) -> None:
        if sweep := self.selected_sweep():
            self.app.stop_sweep(Path(sweep.path))
        elif row := self._selected_or_warn():
            self.app.stop_run(Path(row.path))
        self.refresh_now()

    def action_resume(self) -> None:
        if sweep := self.selected_sweep():
            self.app.resume_sweep(Path(sweep.path))
        elif row := self._selected_or_warn():
            self.app.resume_run(Path(row.path))
        self.refresh_now()

    def action_export(self) -> None:
        if row := self._selected_or_warn():
            self.app.export_run(Path(row.path))

    def action_explore(self) -> None:
        if row := self._selected_or_warn():
            self.app.open_explore(Path(row.path))

    def action_evaluate(self) -> None:
        """The marked runs (in the table's order), else the selected sweep's members, else the
        selected run."""
        if self.marked:
            rows = [r for r in sorted(self.rows, key=sort_key(self.sort), reverse=self.reverse)
                    if r.id in self.marked]
            self.app.evaluate_runs([Path(r.path) for r in rows],
                                   None if len(rows) == 1 else f"the {len(rows)} marked runs")
        elif sweep := self.selected_sweep():
            members = [Path(r.path) for r in self.rows if r.sweep == sweep.id]
            self.app.evaluate_runs(members, f"the {len(members)} members of {sweep.name}")
        elif row := self._selected_or_warn():
            self.app.evaluate_runs([Path(row.path)])

    def action_delete(self) -> None:
        if sweep := self.selected_sweep():
            self.app.delete_sweep(Path(sweep.path), on_done=self.refresh_now)
        elif row := self._selected_or_warn():
            self.app.delete_run(Path(row.path), on_done=self.refresh_now)


def _cycle(options: list[str], current: str) -> str:
    try:
        return options[(options.index(current) + 1) % len(options)]
    except ValueError:
        return options[0]
