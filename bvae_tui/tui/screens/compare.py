"""Compare screen: the marked runs side by side, live.

Four views: overlaid curves (a line per group: its mean, and a dim band from min to max over the
group's runs; with the probed score of runs trained with probes, MIG or a factor's best share,
``p`` cycles it), each run's KL per latent, a score table (mean ± std and n per group, the best
marked, sortable) and the runs' latest traversals next to each other. Runs are named by what
differs between them (``β=4 seed=2``), grouped by a config field (``g`` cycles), and followed
live by a watcher thread that reads only new rows; all the numbers come from
:mod:`bvae_tui.engine.analysis.compare`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, HorizontalScroll, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from bvae_tui.engine.analysis.compare import (
    SYMBOLS,
    Group,
    colour,
    differing_fields,
    group_band,
    group_runs,
    has_curve,
    probe_scores,
    resolve_by,
    run_labels,
    without_probes,
)
from bvae_tui.engine.analysis.compare_runs import CompareRun, RunsFollower, probe_label
from bvae_tui.engine.analysis.compare_table import (
    METRIC_LABELS,
    TRAINING_METRICS,
    choose_metrics,
    score_table,
    sort_groups,
)
from bvae_tui.engine.runs.files import stat_key
from bvae_tui.engine.runs.store import Run
from bvae_tui.safe_text import as_text, plain
from bvae_tui.tui.messages import CompareChanged, PreviewsChanged, WatchError
from bvae_tui.tui.widgets.compare_view import LatentGrid, Legend
from bvae_tui.tui.widgets.curve_plot import CurvePlot, Series
from bvae_tui.tui.widgets.preview_image import preview_image

WATCH_SECONDS = 1.0
PLOTS = (("loss", "loss"), ("recon", "recon"), ("kl", "KL"), ("c", "C"))
VIEWS = ("curves", "latents", "scores", "traversals")
PANEL_WIDTHS = (26, 40, 78)  # traversal panels: three, two or one across 80 columns

HELP = """
# Compare

The marked runs (or the runs in view when none is marked) side by side, live. Each line is
named by the config fields that differ between the runs, e.g. `β=4 seed=2`.

| key | action |
|---|---|
| `1` `2` `3` `4` | curves · KL per latent · scores · traversals |
| `g` | group by the next config field that differs (or no grouping: a line per run) |
| `p` | the probed score drawn under the curves: MIG, then each factor's best share |
| `o` / `O` | sort the score table by the next metric / reverse it (or click a header) |
| `z` | traversal size: three, two or one across |
| `esc` | back to the runs |

**Curves**: a line per group (the mean over its runs), with a dim band from the lowest to the
highest run; runs trained with probes (`--probe-every`) add a plot of a probed score over
iterations (MIG, or the share of one factor its best latent carries), and the groups without
probes are named above it rather than drawn. **Latents**: the last KL of every latent of
each run, largest first, on one scale: how many latents each setting keeps active.
**Scores**: mean ± std over each group's runs and n; `*` marks the best mean; runs without
eval.json are counted (`bvae eval RUN`).
**Traversals**: each run's latest preview, latents in KL order.
"""


class CompareScreen(Screen):
    HELP = HELP
    BINDINGS = [
        Binding("escape", "back", "Runs"),
        Binding("g", "cycle_group", "Group"),
        Binding("p", "cycle_probe", "Probe", show=False),  # named in the probe plot's title
        Binding("o", "cycle_sort", "Sort"),
        Binding("O", "reverse_sort", "Reverse", show=False),
        Binding("z", "zoom", "Zoom", show=False),
        *(Binding(str(i + 1), f"view('{view}')", view.title(), show=False)
          for i, view in enumerate(VIEWS)),
    ]

    def __init__(self, run_paths: list[Path]) -> None:
        super().__init__()
        self.runs = [Run(path) for path in run_paths]
        self.data: list[CompareRun] = []
        self.by_options: list[tuple[str, ...]] = []
        self.by: tuple[str, ...] | None = None
        self.by_chosen = False  # the user picked a grouping ('g'): keep it as runs load
        self.groups: list[Group] = []
        self.labels: dict[str, str] = {}  # run id -> what differs
        self.metrics: list[str] = []  # the score table's columns
        self.sort_metric: str | None = None
        self.sort_descending = True
        self.previews: dict[str, Any] = {}
        self.panel_width = PANEL_WIDTHS[0]
        self.probe: str | None = None  # the probed score plotted (mig, mi/<factor>)
        self.probe_names: list[str] = []  # what the runs' probes hold
        self._dirty: set[str] = set(VIEWS)
        self.redraws = 0  # for tests and the benchmark

    def compose(self) -> ComposeResult:
        yield Static(id="cmp-header", classes="topbar")
        with TabbedContent(id="cmp-tabs"):
            with TabPane("1 Curves", id="curves"), Horizontal(id="cmp-curves-row"):
                with Vertical(id="cmp-curves"):
                    for name, title in PLOTS:
                        yield CurvePlot(title, id=f"cmp-plot-{name}", values=False)
                    yield CurvePlot("probes", id="cmp-plot-probe", values=False)
                yield Legend(id="cmp-legend")
            with TabPane("2 Latents", id="latents"), VerticalScroll():
                yield LatentGrid(id="cmp-latents")
            with TabPane("3 Scores", id="scores"), Vertical():
                yield DataTable(id="cmp-scores", cursor_type="row", zebra_stripes=True)
                yield Static(id="cmp-scores-note", classes="hint")
            with TabPane("4 Traversals", id="traversals"):
                yield HorizontalScroll(id="cmp-trav")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#cmp-plot-c").display = False
        self.query_one("#cmp-plot-probe").display = False  # until a run has probes
        self.query_one("#cmp-plot-probe", CurvePlot).log_ratio = math.inf  # scores in [0, 1]
        for name in ("loss", "recon"):  # their fast early fall would flatten the rest
            self.query_one(f"#cmp-plot-{name}", CurvePlot).log_ratio = 5.0
        self._update_header()
        self.watch_runs()

    # Watching ---------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="compare-watch")
    def watch_runs(self) -> None:
        worker = get_current_worker()
        follower = RunsFollower(self.runs)
        preview_keys: dict[str, Any] = {}
        images: dict[str, Any] = {}
        last_error = ""
        while not worker.is_cancelled:
            try:
                data = follower.poll(lambda partial: self.post_message(
                    CompareChanged("compare", partial)))
                if data is not None:
                    self.post_message(CompareChanged("compare", data))
                if _read_previews(self.runs, preview_keys, images):
                    self.post_message(PreviewsChanged("compare", dict(images)))
            except Exception as exc:  # noqa: BLE001 - show it (once), keep following
                if str(exc) != last_error:
                    last_error = str(exc)
                    self.post_message(WatchError("compare", f"reading runs: {exc}"))
            deadline = time.monotonic() + WATCH_SECONDS
            while time.monotonic() < deadline and not worker.is_cancelled:
                time.sleep(0.05)

    def on_compare_changed(self, message: CompareChanged) -> None:
        self.set_data(message.runs)

    def on_watch_error(self, message: WatchError) -> None:
        self.notify(message.error, severity="error")

    def on_previews_changed(self, message: PreviewsChanged) -> None:
        self.previews = message.images
        self._dirty.add("traversals")
        self._redraw_active()

    # Data and grouping --------------------------------------------------------------------------
    def set_data(self, runs: list[CompareRun]) -> None:
        """New data for every view: the one in sight is redrawn now, the others when shown."""
        self.data = [r for r in runs if r.rows]
        # Runs arrive in parts (the first may all share a beta): until the user picks a
        # grouping, the default follows everything loaded so far.
        if not self.by_chosen and self.data:
            default = resolve_by(None, self.data)
            singles = [(f,) for f in differing_fields(self.data) if (f,) != default]
            self.by_options = list(dict.fromkeys([default, *singles, ()]))
            self.by = default
        labels = run_labels(self.data)
        self.labels = {r.id: label for r, label in zip(self.data, labels, strict=True)}
        self.groups = group_runs(self.data, self.by or ())
        self._dirty = set(VIEWS)
        self._update_header()
        self._redraw_active()

    @property
    def by_text(self) -> str:
        if not self.by:
            return "run"
        # A field of a newer version (or a hand-edited config.json) may be named anything.
        return plain(", ".join(SYMBOLS.get(f, f) for f in self.by))

    def _update_header(self) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("compare ", style="bold")
        text.append(f"{len(self.runs)} runs")
        if not self.data:
            text.append("  waiting for metrics rows…", style="dim italic")
        else:
            text.append(f"  by {self.by_text} ({len(self.groups)} groups) [g]", style="dim")
            running = sum(r.state == "running" for r in self.data)
            if running:
                text.append(f"  {running} running", style="green")
            missing = len(self.runs) - len(self.data)
            if missing:
                text.append(f"  {missing} without rows yet", style="yellow")
            datasets = sorted({str(r.config.get("dataset")) for r in self.data})
            text.append(f"  {plain(', '.join(datasets))}", style="dim")
        self.query_one("#cmp-header", Static).update(text)

    # Views ------------------------------------------------------------------------------------
    @property
    def view(self) -> str:
        return self.query_one(TabbedContent).active or VIEWS[0]

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self._redraw_active()

    def _redraw_active(self) -> None:
        view = self.view
        if view in self._dirty:
            self._dirty.discard(view)
            getattr(self, f"_draw_{view}")()
            self.redraws += 1

    def redraw(self) -> None:
        """Redraw every view now (the benchmark times this)."""
        for view in VIEWS:
            getattr(self, f"_draw_{view}")()
        self._dirty.clear()

    def _draw_curves(self) -> None:
        show_c = has_curve(self.data, "c")
        for name, _ in PLOTS:
            plot = self.query_one(f"#cmp-plot-{name}", CurvePlot)
            if name == "c":
                plot.display = show_c
                if not show_c:
                    continue
            plot.set_data([], [self._series(group, name) for group in self.groups])
        self._draw_probe()
        title = f"by {self.by_text}" if self.by else "runs"
        self.query_one(Legend).set_groups(self.groups, title)

    def _draw_probe(self) -> None:
        """The chosen probed score per group; groups without probes are named in the title,
        never drawn (a missing probe is not a MIG of zero)."""
        self.probe_names = probe_scores(self.data)
        plot = self.query_one("#cmp-plot-probe", CurvePlot)
        plot.display = bool(self.probe_names)
        if not self.probe_names:
            return
        if self.probe not in self.probe_names:
            self.probe = self.probe_names[0]
        missing = without_probes(self.groups)
        title = f"{probe_label(self.probe)} (probes) p"
        if missing:
            title += "  no probes: " + ", ".join(g.label for g in missing)
        plot.title = plain(title)  # factor names are probes.jsonl's, labels config.json's
        unprobed = {id(g) for g in missing}  # by identity: groups hold arrays
        plot.set_data([], [self._series(group, self.probe) for group in self.groups
                           if id(group) not in unprobed])

    def _series(self, group: Group, name: str) -> Series:
        color = colour(group.colour)
        if len(group.runs) == 1:
            xs, ys = group.runs[0].series(name)
            return Series(group.label, ys, color, xs=xs)
        band = group_band(group, name, max_points=500)
        return Series(group.label, band.mean, color, xs=band.xs, lo=band.lo, hi=band.hi)

    def _draw_latents(self) -> None:
        rows = [(self.labels.get(run.id, run.name), group.colour, run)
                for group in self.groups for run in group.runs]
        self.query_one(LatentGrid).set_runs(rows)

    def _draw_scores(self) -> None:
        table = self.query_one("#cmp-scores", DataTable)
        note = self.query_one("#cmp-scores-note", Static)
        table.clear(columns=True)
        if not self.data:
            note.update("waiting for metrics rows…")
            return
        scores = score_table(self.groups, choose_metrics(None, self.data))
        self.metrics = scores.metrics
        table.add_column("group", key="group")
        table.add_column("n", key="n")  # runs, or scored/runs when some have no eval.json
        for metric in scores.metrics:
            arrow = ("↓" if self.sort_descending else "↑") if metric == self.sort_metric else ""
            # eval.json's keys name the columns: Text, or a DataTable would read them as markup
            table.add_column(as_text(METRIC_LABELS.get(metric, metric) + arrow), key=metric)
        table.fixed_columns = 1
        for gi in sort_groups(scores, self.sort_metric, self.sort_descending):
            group = scores.groups[gi]
            runs = len(group.runs)
            scored = sum(r.evaluated for r in group.runs)
            # scored/runs where some are not scored (0/1 too: none is), else just runs
            cells: list[Any] = [as_text(group.label, colour(group.colour)),
                                Text(f"{scored}/{runs}" if scored != runs else str(runs),
                                     justify="right")]
            for metric in scores.metrics:
                stat = scores.stat(gi, metric)
                if stat is None:
                    cells.append(Text("-", style="dim", justify="right"))
                    continue
                digits = 2 if metric == "kl" else 1 if metric in ("loss", "recon",
                                                                  "active") else 3
                expected = runs if metric in TRAINING_METRICS else scored
                text = stat.text(digits, compact=True) + (
                    "" if stat.n == expected else f" n={stat.n}")
                best = scores.best.get(metric) == gi
                cells.append(Text(text + ("*" if best else " "), justify="right",
                                  style="bold green" if best else ""))
            table.add_row(*cells)
        parts = ["* best mean"] if scores.best else []
        missing = len(scores.without_eval)
        if missing:
            parts.append(f"{missing} of {len(self.data)} runs not scored ('bvae eval RUN')")
        parts.append("o sorts")
        note.update(" · ".join(parts))

    def _draw_traversals(self) -> None:
        """A panel per run (label above its preview), in group order; panels are made once
        and moved when the grouping changes."""
        box = self.query_one("#cmp-trav", HorizontalScroll)
        panels = {(p.id or "")[len("trav-"):]: p for p in box.children}
        previous = None
        for group in self.groups:
            for run in group.runs:
                label = as_text(self.labels.get(run.id, run.name),
                                f"bold {colour(group.colour)}")
                panel = panels.get(run.id)
                if panel is None:
                    panel = Vertical(Static(label, classes="trav-label"),
                                     preview_image("no traversal preview yet",
                                                   classes="trav-img"),
                                     id=f"trav-{run.id}", classes="trav-panel")
                    box.mount(panel, after=previous)
                    panels[run.id] = panel
                else:
                    panel.query_one(".trav-label", Static).update(label)
                    if previous is not None:
                        box.move_child(panel, after=previous)
                    elif box.children[0] is not panel:
                        box.move_child(panel, before=0)
                previous = panel
        self.call_after_refresh(self._fill_traversals)

    def _fill_traversals(self) -> None:
        for panel in self.query(".trav-panel"):
            panel.styles.width = self.panel_width
            run_id = (panel.id or "")[len("trav-"):]
            image: Any = panel.query_one(".trav-img")
            new = self.previews.get(run_id)
            shown = image.array if hasattr(image, "array") else image.image
            if new is not shown:  # redrawing an unchanged picture is the costly part
                image.set_image(new, "no traversal preview yet")

    # Actions ----------------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_view(self, view: str) -> None:
        self.query_one(TabbedContent).active = view

    def action_cycle_group(self) -> None:
        if not self.by_options or self.by is None:
            return
        index = self.by_options.index(self.by) if self.by in self.by_options else -1
        self.by = self.by_options[(index + 1) % len(self.by_options)]
        self.by_chosen = True
        self.set_data(self.data)
        self.notify(f"grouped by {self.by_text}", timeout=2)

    def action_cycle_probe(self) -> None:
        """Plot the next probed score (MIG, then each factor's best share)."""
        if not self.probe_names:
            self.notify("no run here has probes yet: train with --probe-every N on a dataset "
                        "with factors", timeout=3)
            return
        index = self.probe_names.index(self.probe) if self.probe in self.probe_names else -1
        self.probe = self.probe_names[(index + 1) % len(self.probe_names)]
        self.action_view("curves")
        self._draw_probe()

    def action_cycle_sort(self) -> None:
        metrics = self.metrics
        options: list[str | None] = [None, *metrics]
        index = options.index(self.sort_metric) if self.sort_metric in options else 0
        self.sort_metric = options[(index + 1) % len(options)]
        self._resort()

    def action_reverse_sort(self) -> None:
        self.sort_descending = not self.sort_descending
        self._resort()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key in self.metrics:
            if key == self.sort_metric:
                self.sort_descending = not self.sort_descending
            self.sort_metric = key
            self._resort()

    def _resort(self) -> None:
        self._dirty.add("scores")
        self.action_view("scores")
        self._redraw_active()

    def action_zoom(self) -> None:
        index = PANEL_WIDTHS.index(self.panel_width) if self.panel_width in PANEL_WIDTHS else 0
        self.panel_width = PANEL_WIDTHS[(index + 1) % len(PANEL_WIDTHS)]
        self.action_view("traversals")
        self._fill_traversals()


def _read_previews(runs: list[Run], keys: dict[str, Any], images: dict[str, Any]) -> bool:
    """Decode the traversal previews that changed since the last call (in the watcher thread);
    True when any did."""
    from bvae_tui.engine.analysis.render import read_png_rgb

    changed = False
    for run in runs:
        path = run.preview_path("traversal")
        key = stat_key(path)
        if key == keys.get(run.id):
            continue
        keys[run.id] = key
        try:
            images[run.id] = read_png_rgb(path)
        except Exception:  # noqa: BLE001 - missing or being replaced: the next change brings it
            images.pop(run.id, None)
        changed = True
    return changed
