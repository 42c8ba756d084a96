"""Monitor screen: one run, live. Everything shown is read from the run directory by a watcher
thread that only posts messages; a worker that dies or a run deleted meanwhile is just shown."""

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
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from bvae_tui.engine.analysis.c_schedule import marks as c_marks
from bvae_tui.engine.analysis.c_schedule import schedule as c_schedule
from bvae_tui.engine.runs.eval_progress import progress_text, read_job, with_liveness
from bvae_tui.engine.runs.files import FileCache
from bvae_tui.engine.runs.health import EstimateWarning, estimate_warnings
from bvae_tui.engine.runs.records import EVAL_JOB_FILE, ProbeRow, Status
from bvae_tui.engine.runs.store import ProbesTail, Run
from bvae_tui.safe_text import plain
from bvae_tui.styles import state_style
from bvae_tui.tui.messages import (
    LogChanged,
    MetricsChanged,
    PreviewChanged,
    ProbesChanged,
    RunGone,
    ScoresChanged,
    StatusChanged,
    WatchError,
)
from bvae_tui.tui.naming import fit_middle
from bvae_tui.tui.run_data import (
    TERM_LABELS,
    MetricsHistory,
    RunWatcher,
    eta_seconds,
    fmt_duration,
    fmt_num,
    fmt_scores,
    objective_terms,
    objective_text,
)
from bvae_tui.tui.widgets.curve_plot import SCALES, CurvePlot, Series
from bvae_tui.tui.widgets.kl_bars import KLBars, bar
from bvae_tui.tui.widgets.log_tail import LogTail
from bvae_tui.tui.widgets.mi_heatmap import MIHeatmap, probe_matrix
from bvae_tui.tui.widgets.preview_image import preview_image

WATCH_SECONDS = 0.2  # a new metrics row shows up within about this (target: under a second)
TERM_COLORS = ("yellow", "red", "blue")
PLOTS = ("plot-loss", "plot-recon", "plot-kl", "plot-terms", "plot-mig")  # one iteration axis
MARK_WIDTH = 5  # columns per C mark on the axis ("C25" and room around it)

HELP = """
# Monitor

One run, live: progress, curves (log scale when a curve spans orders of magnitude), the KL of
each latent on a fixed scale in nats (● active: KL > 0.1), the posterior mean μ and variance σ²
of each latent, the latest traversal preview (rows: latents by KL; columns: values), and the
worker log. beta-TCVAE, FactorVAE and DIP-VAE runs get a fourth plot with their own terms (MI,
TC and dimension-wise KL; TC and the discriminator's accuracy; the covariance penalties), their
latest values, and a warning when an estimate has gone bad for a while (a TC estimate below
zero, a discriminator stuck at chance or always right): the same warnings as worker.log.
Once the run is evaluated (`bvae eval RUN`, or `--eval-at-end`), a heat map under the KL bars
shows how much of each factor each latent carries (MI / H: 1 means the latent alone tells the
factor; `bvae export mi RUN` saves it as a PNG). A run with probes (`--probe-every`, on by
default on datasets with factors) shows its latest probe there instead, live as it trains, with
the probe's iteration above it, and a MIG curve under the loss curves; `[` and `]` step back
and forward through the probes (forward past the last one follows the live probe again).
The curves and the MIG curve share one iteration axis. For objective B the capacity schedule
is marked on it: a dotted column and a label (`C5`, `C10`, ...) where C passes whole values
(every 1, 2, 5, 10 ... nats, as many as fit), and the heat map's caption names the C of the
probe shown, so a factor moving into a latent can be read against the C it happened at.

| key | action |
|---|---|
| `s` | stop the run (it checkpoints, then reads *stopped*) |
| `r` | resume it from its last checkpoint |
| `e` | export a traversal GIF |
| `x` | explore the model by hand (the latest checkpoint, read while it trains; `R` there reloads) |
| `E` | evaluate the run in the background, fast or full (progress in the header, then scores) |
| `[` / `]` | the heat map's probe before / after the one shown |
| `p` | switch the preview between traversal and reconstruction |
| `z` | preview size: fit the width, 1/4, 1/2, full (scroll sideways) |
| `l` | curves' y axis: auto (log past a decade, titled `(log)`), log, linear |
| `PgDn` / `PgUp` | scroll down to the preview and the log, and back |
| `esc` | back to the runs |
"""


class MonitorScreen(Screen):
    HELP = HELP
    BINDINGS = [
        Binding("escape", "back", "Runs"),
        Binding("s", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("e", "export", "Export"),
        Binding("x", "explore", "Explore", show=False),  # in ?: the footer is full at 80
        Binding("E", "evaluate", "Evaluate", show=False),  # in ? and the palette
        # p and z are named in the preview's title: the footer keeps to 80 columns.
        Binding("p", "toggle_preview", "Preview", show=False),
        Binding("z", "zoom", "Zoom", show=False),
        Binding("l", "cycle_scale", "Log axis", show=False),
        Binding("left_square_bracket", "probe(-1)", "Earlier probe", show=False),
        Binding("right_square_bracket", "probe(1)", "Later probe", show=False),
        # On a short terminal the preview and the log are below the fold.
        Binding("pagedown", "scroll_body(1)", "Log", key_display="PgDn", priority=True),
        Binding("pageup", "scroll_body(-1)", "Up", show=False, priority=True),
    ]

    def __init__(self, run_path: Path) -> None:
        super().__init__()
        self.run = Run(run_path)
        summary = self.run.summary()
        self.config: dict[str, Any] = summary.config
        self.run_name = plain(summary.name)  # shown in the header: one line of text
        self.planned = summary.total or 0  # until status.json says how many steps
        self.status = Status()  # no state until the watcher's first poll
        self.eval_note: str | None = None  # a detached evaluation's progress (eval_job.json)
        self._eval_job = FileCache()
        self.history = MetricsHistory()
        self.scores: dict[str, float] = {}
        self.previews: dict[str, Any] = {}
        self.preview_kind = "traversal"
        self.curve_scale = "auto"  # the curves' y axis (l cycles it)
        self.gone = False
        self.terms = objective_terms(self.config)  # the objective's own metrics fields
        self.warnings: list[EstimateWarning] = []
        self.updates = 0  # metrics repaints, for tests and the benchmark
        self.probes: list[ProbeRow] = []  # probes.jsonl's rows, by iteration
        self.probe_pos: int | None = None  # the probe the heat map shows; None: the latest
        self.eval_mi: Any = None  # eval.json's matrix, shown while the run has no probes
        self.c_plan = c_schedule(self.config)  # objective B's capacity schedule, else None

    def compose(self) -> ComposeResult:
        yield Static(id="mon-header", classes="topbar")
        with VerticalScroll(id="mon-body"):
            with Horizontal(id="mon-top"):
                with Vertical(id="mon-curves"):
                    yield CurvePlot("loss", id="plot-loss")
                    yield CurvePlot("recon", id="plot-recon")
                    yield CurvePlot("KL", id="plot-kl")
                    yield CurvePlot(" · ".join(TERM_LABELS[t] for t in self.terms),
                                    id="plot-terms")
                    yield CurvePlot("MIG (probes)", id="plot-mig")
                with Vertical(id="mon-side"):
                    yield KLBars(id="mon-latents")
                    yield MIHeatmap(id="mon-mi")
            yield Static(id="mon-warnings")
            yield Static(id="mon-preview-title", classes="section")
            with HorizontalScroll(id="mon-preview-box"):
                yield preview_image("no preview yet (written every preview interval)",
                                    id="mon-preview")
            yield Static(Text("worker.log", style="bold"), classes="section")
            yield LogTail(id="mon-log")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#plot-terms").display = bool(self.terms)
        self.query_one("#plot-mig").display = False  # until the first probe
        self.query_one("#plot-mig", CurvePlot).log_ratio = math.inf  # MIG lives in [0, 1]
        self.query_one("#mon-warnings").display = False
        self._update_header()
        self._update_preview()
        self.watch_run()
        self.set_interval(1.0, self._poll_eval)

    # Watching ---------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="monitor-watch")
    def watch_run(self) -> None:
        worker = get_current_worker()
        watcher = RunWatcher(self.run)
        probes = _ProbeWatch(self.run)
        source = self.run.id
        last_error = ""
        while not worker.is_cancelled:
            try:
                ev = watcher.poll()
                probe_rows = probes.poll()
            except Exception as exc:  # noqa: BLE001 - show it (once), keep watching
                if str(exc) != last_error:
                    last_error = str(exc)
                    self.post_message(WatchError(source, f"reading {self.run.id}: {exc}"))
                time.sleep(1.0)
                continue
            if ev.gone:
                self.post_message(RunGone(source))
                return
            if ev.status is not None:
                self.post_message(StatusChanged(source, ev.status))
            if ev.metrics is not None:
                self.post_message(MetricsChanged(source, ev.metrics))
            if ev.scores is not None:
                self.post_message(ScoresChanged(source, ev.scores, ev.mi))
            if ev.log is not None:
                self.post_message(LogChanged(source, ev.log))
            if probe_rows is not None:
                self.post_message(ProbesChanged(source, probe_rows))
            if ev.preview is not None:
                self.post_message(PreviewChanged(source, _read_previews(ev.preview)))
            time.sleep(WATCH_SECONDS)

    def on_status_changed(self, message: StatusChanged) -> None:
        self.status = message.status
        self._update_header()

    def on_metrics_changed(self, message: MetricsChanged) -> None:
        self.history = h = message.history
        self.updates += 1
        series_kl = [Series("KL", h.kl, "green")]
        if h.has_c():
            series_kl.append(Series("C", h.c, "yellow"))
        self.query_one("#plot-loss", CurvePlot).set_data(h.iters, [Series("loss", h.loss,
                                                                          "cyan")])
        self.query_one("#plot-recon", CurvePlot).set_data(h.iters, [Series("recon", h.recon,
                                                                           "magenta")])
        self.query_one("#plot-kl", CurvePlot).set_data(h.iters, series_kl)
        if self.terms:
            self._update_terms(h)
        if h.last is not None:
            self.query_one(KLBars).set_latents(h.last.kl_per_latent, h.last.mu_mean,
                                               h.last.var_mean)
        self._update_axes()
        self._update_header()

    def _update_axes(self) -> None:
        """One iteration span for the curves and the MIG curve (probes and metrics rows come
        at different steps), and for objective B the marks where C passes whole values."""
        ends = [x for xs in (self.history.iters, [r.iter for r in self.probes])
                for x in (xs[:1] + xs[-1:]) if x is not None]
        if not ends:
            return
        span = (float(min(ends)), float(max(ends)))
        marks: list[tuple[float, str]] = []
        if self.c_plan is not None:
            width = self.query_one("#plot-loss", CurvePlot).size.width or 60
            slots = max(0, (width - 8) // MARK_WIDTH)
            marks = [(x, f"C{c:g}") for x, c in c_marks(self.c_plan, *span, slots)]
        for plot_id in PLOTS:
            self.query_one(f"#{plot_id}", CurvePlot).set_axis(span, marks)

    def _update_terms(self, h: MetricsHistory) -> None:
        """The objective's own terms (curves, latest values in the title) and the warnings
        about its estimates: short in the header, in full under the plots."""
        series = [Series(TERM_LABELS[t], h.terms[t], color)
                  for t, color in zip(self.terms, TERM_COLORS, strict=False)]
        self.query_one("#plot-terms", CurvePlot).set_data(h.iters, series)
        self.warnings = estimate_warnings(h.iters, h.terms)
        box = self.query_one("#mon-warnings", Static)
        box.update(Text("\n").join(Text(f"⚠ {w.message}", style="bold yellow")
                                   for w in self.warnings))
        box.display = bool(self.warnings)

    def on_scores_changed(self, message: ScoresChanged) -> None:
        self.scores = message.scores
        self.eval_mi = message.mi
        self._update_heatmap()
        self._update_header()

    def on_probes_changed(self, message: ProbesChanged) -> None:
        self.probes = message.rows
        mig = [(r.iter, r.mig) for r in self.probes if r.mig is not None]
        plot = self.query_one("#plot-mig", CurvePlot)
        plot.display = bool(mig)
        plot.set_data([i for i, _ in mig], [Series("MIG", [m for _, m in mig], "cyan")])
        if self.probe_pos is not None:
            self.probe_pos = min(self.probe_pos, len(self.probes) - 1) if self.probes else None
        self._update_axes()
        self._update_heatmap()

    def _update_heatmap(self) -> None:
        """The probe chosen with [ and ] (else the latest), or eval's matrix without probes."""
        heat = self.query_one(MIHeatmap)
        if not self.probes:
            heat.set_matrix(self.eval_mi)
            return
        pos = len(self.probes) - 1 if self.probe_pos is None else self.probe_pos
        row = self.probes[pos]
        where = "latest" if self.probe_pos is None else f"{pos + 1}/{len(self.probes)}"
        mig = f" MIG {row.mig:.2f}" if row.mig is not None else ""
        c = ""
        if self.c_plan is not None and row.iter is not None:  # the C this probe was taken at
            c = f" C {round(self.c_plan.at(row.iter), 2):g}"
        heat.set_matrix(probe_matrix(row), f"probe @ {row.iter} ({where}){c}{mig}  [ ]")

    def on_log_changed(self, message: LogChanged) -> None:
        self.query_one(LogTail).set_lines(message.lines)

    def on_preview_changed(self, message: PreviewChanged) -> None:
        self.previews = message.images
        self._update_preview()

    def on_watch_error(self, message: WatchError) -> None:
        self.notify(message.error, severity="error")

    def on_run_gone(self, message: RunGone) -> None:
        self.gone = True
        self._update_header()
        self.notify(f"run {self.run.id} was deleted", severity="warning")

    # View -------------------------------------------------------------------------------------
    @property
    def iteration(self) -> int:
        last = self.history.last
        values = [v for v in (self.status.iteration, last and last.iter) if v is not None]
        return max(values) if values else 0

    def on_resize(self, event: Any) -> None:
        self._update_header()
        self.call_after_refresh(self._update_axes)  # as many C marks as the new width holds

    def _update_header(self) -> None:
        """Three lines that never wrap, sized for 80 columns: (1) state, name, progress;
        (2) latest loss and KL, speed, ETA, device; (3) eval scores, id, objective, dataset (or
        the error of a run that ended badly)."""
        st = self.status
        # Everything from the run's files (state, device, activity, config, error) goes through
        # plain(): these Texts are never parsed as markup, but an ESC would reach the terminal.
        state = "deleted" if self.gone else plain(st.state) or "…"
        total = st.total if st.total is not None else self.planned
        it = self.iteration
        last = self.history.last
        width = max(40, self.size.width - 2)  # the header's padding
        frac = it / total if total else 0.0

        # Line 1: the progress bar takes what the name leaves, the name gives way first.
        progress = f" {it}/{total} {100 * frac:.0f}%"
        room = width - len(state) - 1 - len(progress) - 3  # spaces and the bar's ends
        bar_width = max(8, min(30, room - min(len(self.run_name), 24)))
        name = fit_middle(self.run_name, max(4, room - bar_width))  # its end tells members apart
        line1 = Text(no_wrap=True, overflow="ellipsis")
        line1.append(f"{state} ", style=state_style(state) or "bold red")
        line1.append(name, style="bold")
        line1.append(" ▕")
        line1.append(bar(frac, bar_width), style="green" if state == "running" else "grey62")
        line1.append("▏")
        line1.append(progress)

        # Line 2: what the user watches most.
        line2 = Text(no_wrap=True, overflow="ellipsis")
        line2.append("loss ", style="dim")
        line2.append(fmt_num(last.loss if last else None))
        line2.append("  KL ", style="dim")
        line2.append(fmt_num(last.kl if last else None))
        if self.warnings:
            line2.append(f"  ⚠ {' · '.join(w.short for w in self.warnings)}",
                         style="bold yellow")
        if st.activity and not self.gone:
            line2.append(f"  {plain(st.activity)}…", style="italic")  # e.g. loading data
        if self.eval_note and not self.gone:
            line2.append(f"  {plain(self.eval_note)}",
                         style="bold red" if "failed" in self.eval_note else "italic")
        ips = last.img_per_s if last else None
        if ips is not None and math.isfinite(ips) and state == "running":
            line2.append(f"  {ips:,.0f} img/s", style="dim")
        if state == "running":
            eta = eta_seconds(self.history, it, total)
            line2.append("  ETA ", style="dim")
            line2.append(fmt_duration(eta), style="bold")
        if st.device:
            line2.append(f"  {plain(st.device)}", style="dim")

        # Line 3: the run id first (whole, or its start and end: it tells this run from a
        # sweep's other members), then what the run is, then the scores (cut first).
        line3 = Text(no_wrap=True, overflow="ellipsis")
        line3.append(fit_middle(self.run.id, width), style="bold dim")
        line3.append(plain(f"  {objective_text(self.config) if self.config else '?'}  "
                           f"{self.config.get('dataset', '?')}"), style="dim")
        scores = fmt_scores(self.scores)
        if scores and len(line2) + 2 + len(scores) <= width:  # beside the losses if they fit
            line2.append(f"  {scores}", style="cyan")
        elif scores:
            line3.append(f"  {scores}", style="cyan")
        error = st.error
        if self.gone:
            line3 = Text("the run directory was deleted; esc goes back", style="bold red")
        elif error and state in ("failed", "lost", "stopped"):
            line3 = Text(plain(error), style=state_style(state), no_wrap=True,
                         overflow="ellipsis")
        lines = [line1, line2, line3]
        for line in lines:  # cut here too: a wrapped line would push the next ones off
            line.truncate(width, overflow="ellipsis")
        header = Text("\n").join(lines)
        header.no_wrap, header.overflow = True, "ellipsis"
        self.query_one("#mon-header", Static).update(header)

    def _update_preview(self) -> None:
        kind = self.preview_kind
        other = "recon" if kind == "traversal" else "traversal"
        zoom = self.query_one("#mon-preview").zoom  # type: ignore[attr-defined]
        size = "fit" if zoom is None else f"{zoom:g}x"
        title = Text.assemble((kind, "bold"), (f"  p: {other}  z: size ({size})", "dim"))
        self.query_one("#mon-preview-title", Static).update(title)
        image = self.previews.get(kind)
        self.query_one("#mon-preview").set_image(  # type: ignore[attr-defined]
            image, None if image is not None else f"no {kind} preview yet")

    # Actions ----------------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_stop(self) -> None:
        self.app.stop_run(self.run.path)

    def action_resume(self) -> None:
        self.app.resume_run(self.run.path)

    def action_export(self) -> None:
        self.app.export_run(self.run.path)

    def action_explore(self) -> None:
        self.app.open_explore(self.run.path)

    def action_evaluate(self) -> None:
        self.app.evaluate_runs([self.run.path])

    def _poll_eval(self) -> None:
        """eval_job.json, parsed again only when it changes (a small atomic file)."""
        job = with_liveness(self._eval_job.get(self.run.path / EVAL_JOB_FILE, read_job))
        note = progress_text(job)
        if note != self.eval_note:
            self.eval_note = note
            self._update_header()

    def action_scroll_body(self, direction: int) -> None:
        body = self.query_one("#mon-body", VerticalScroll)
        if direction > 0:
            body.scroll_page_down(animate=False)
        else:
            body.scroll_page_up(animate=False)

    def action_zoom(self) -> None:
        image: Any = self.query_one("#mon-preview")
        image.set_zoom(_next_zoom(image.zoom))
        self._update_preview()

    def action_probe(self, step: int) -> None:
        """Step the heat map through the probes; forward past the last follows the live one."""
        if not self.probes:
            return
        last = len(self.probes) - 1
        pos = (last if self.probe_pos is None else self.probe_pos) + step
        self.probe_pos = None if pos >= last else max(0, pos)
        self._update_heatmap()

    def action_cycle_scale(self) -> None:
        """The curves' y axis: auto -> log -> linear -> auto."""
        self.curve_scale = SCALES[(SCALES.index(self.curve_scale) + 1) % len(SCALES)]
        for plot in self.query(CurvePlot):
            plot.set_scale(self.curve_scale)
        words = {"auto": "log axis past a decade", "log": "log axis", "linear": "linear axis"}
        self.notify(f"curves: {words[self.curve_scale]} (l)", timeout=2)

    def action_toggle_preview(self) -> None:
        self.preview_kind = "recon" if self.preview_kind == "traversal" else "traversal"
        self._update_preview()


class _ProbeWatch:
    """probes.jsonl's rows for the watcher thread: the whole list, by iteration, when it
    changed (a resume rewrites the file; its rows replace those of the same iteration)."""

    def __init__(self, run: Run) -> None:
        self._tail = ProbesTail(run.probes_path)
        self._rows: dict[int, ProbeRow] = {}

    def poll(self) -> list[ProbeRow] | None:
        new = [r for r in self._tail.read_new() if r.iter is not None]
        if not new:
            return None
        for row in new:
            self._rows[int(row.iter or 0)] = row
        return [self._rows[k] for k in sorted(self._rows)]


ZOOMS: tuple[float | None, ...] = (None, 0.25, 0.5, 1.0)


def _next_zoom(zoom: float | None) -> float | None:
    return ZOOMS[(ZOOMS.index(zoom) + 1) % len(ZOOMS)] if zoom in ZOOMS else None


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def _read_previews(paths: dict[str, Path]) -> dict[str, Any]:
    """Decode the preview PNGs (in the watcher thread: PIL work stays off the UI thread)."""
    images: dict[str, Any] = {}
    try:
        from bvae_tui.engine.analysis.render import read_png_rgb
    except ImportError:
        return images
    for kind, path in paths.items():
        try:
            images[kind] = read_png_rgb(path)
        except Exception:  # noqa: BLE001 - replaced or half there: the next change brings it
            continue
    return images
