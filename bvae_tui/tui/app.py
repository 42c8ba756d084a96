"""The Textual app `bvae-tui`: runs browser, new-run form, live monitor.

The app holds the actions every screen shares (launch, stop, resume, export, delete); each one is
a call into the engine with its :class:`UserError` shown as a one-line notification. Nothing here
trains or renders: closing the app (or losing SSH) leaves detached workers training, and a new
app picks them up from their run directories.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.markup import escape as escape_markup
from textual.notifications import SeverityLevel
from textual.screen import Screen

from bvae_tui.datasets.registry import data_root
from bvae_tui.engine.runs.store import Run, runs_root
from bvae_tui.errors import UserError
from bvae_tui.safe_text import plain
from bvae_tui.tui.eval_actions import EvalActions
from bvae_tui.tui.messages import ExportDone
from bvae_tui.tui.screens.confirm import ConfirmScreen
from bvae_tui.tui.screens.explore import ExploreScreen
from bvae_tui.tui.screens.export import ExportOptions, ExportScreen
from bvae_tui.tui.screens.help import HelpScreen
from bvae_tui.tui.screens.monitor import MonitorScreen
from bvae_tui.tui.screens.new_run import NewRunScreen
from bvae_tui.tui.screens.runs import RunsScreen
from bvae_tui.tui.sweep_actions import SweepActions


class BvaeApp(SweepActions, EvalActions, App):
    TITLE = "bvae-tui"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, runs_dir: str | os.PathLike | None = None,
                 data_dir: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.runs_root = runs_root(runs_dir)
        self.data_root = data_root(data_dir)
        self.exports: dict[str, Path] = {}  # run id -> last GIF written from this app

    def on_mount(self) -> None:
        self.push_screen(RunsScreen(self.runs_root))

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Every notification (screens' and widgets' too: they call this) as plain text.

        What they say quotes run ids, paths and errors read from run files, which may hold
        brackets or escape sequences: parsed as markup, a ``[/]`` would raise a MarkupError in
        the middle of the app. So ``markup`` is ignored (Textual's widgets pass True)."""
        super().notify(plain(message), title=plain(title), severity=severity, timeout=timeout,
                       markup=False)

    # Screens ----------------------------------------------------------------------------------
    @property
    def runs_screen(self) -> RunsScreen | None:
        return next((s for s in self.screen_stack if isinstance(s, RunsScreen)), None)

    def _refresh_runs(self) -> None:
        if self.runs_screen is not None:
            self.runs_screen.refresh_now()

    def action_new_run(self) -> None:
        if not isinstance(self.screen, NewRunScreen):
            self.push_screen(NewRunScreen(self.data_root))

    def open_monitor(self, run_path: Path) -> None:
        if not run_path.is_dir():
            self.notify(f"run {run_path.name} no longer exists", severity="error")
            return
        if isinstance(self.screen, MonitorScreen) and self.screen.run.path == run_path:
            return  # already watching it
        if self.runs_screen is not None:
            self.runs_screen.select_run(run_path.name)  # back from the monitor: on this run
        from bvae_tui.tui.screens.sweep import SweepScreen

        if isinstance(self.screen, SweepScreen):  # esc goes back there: the footer says Sweep
            from bvae_tui.tui.screens.member_monitor import MemberMonitorScreen

            self.push_screen(MemberMonitorScreen(run_path))
            return
        self.push_screen(MonitorScreen(run_path))

    def open_explore(self, run_path: Path) -> None:
        """The Explore screen on a run (any state: it reads the checkpoint, never the lock)."""
        if self._deleted(run_path):
            return
        self.push_screen(ExploreScreen(run_path, self.data_root))

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        text = getattr(self.screen, "HELP", None) or "# bvae-tui"
        self.push_screen(HelpScreen(text))

    # Run actions (shared by screens and the command palette) --------------------------------------
    def launch_run(self, config: Any, name: str | None,
                   on_launched: Callable[[Path], None] | None = None) -> None:
        from bvae_tui.engine.runs.launch import start_run

        try:
            # start_run checks the device and data before a run directory exists
            run = start_run(config, self.runs_root, self.data_root, name)
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return
        pid = run.raw_status().pid
        self.notify(f"started {run.id} (worker pid {pid})")
        if self.runs_screen is not None:
            self.runs_screen.select_run(run.id)
        if on_launched:
            on_launched(run.path)

    def _deleted(self, run_path: Path) -> bool:
        """True (and says so) when the run's directory is gone, e.g. deleted from elsewhere:
        stopping, resuming or exporting it would only give misleading errors."""
        if run_path.is_dir():
            return False
        self.notify(f"run {run_path.name} was deleted", severity="warning")
        return True

    def stop_run(self, run_path: Path) -> None:
        from bvae_tui.engine.runs.launch import stop

        if self._deleted(run_path):
            return
        run = Run(run_path)
        try:
            stop(run)
        except UserError as exc:
            self.notify(str(exc), severity="warning")
            return
        self.notify(f"stopping {run.id}: it checkpoints, then reads 'stopped'")
        self._refresh_runs()

    def resume_run(self, run_path: Path) -> None:
        from bvae_tui.engine.runs.resume import plan_resume, resume_detached

        if self._deleted(run_path):
            return
        run = Run(run_path)
        if _in_sweep(run):  # back in its sweep's queue, so that it keeps to the sweep's slots
            self.resume_member(run_path)
            return

        def start() -> None:  # in a thread: right after a stop, the lock waits for the old worker
            # A run another process holds, or one that cannot be resumed, is a RunError (a
            # UserError): shown, nothing launched. One without a checkpoint starts from 0.
            try:
                plan = plan_resume(run)
                lines = plan.messages()
                pid = resume_detached(plan)
            except UserError as exc:
                self.call_from_thread(self.notify, str(exc), severity="warning")
                return
            self.call_from_thread(self.notify,
                                  " ".join([*lines, f"resumed {run.id} (worker pid {pid})"]))
            self.call_from_thread(self._refresh_runs)

        self.run_worker(start, thread=True, group="resume", exit_on_error=False)

    def delete_run(self, run_path: Path, on_done: Callable[[], None] | None = None) -> None:
        if self._deleted(run_path):
            return
        from bvae_tui.engine.runs.store import check_deletable

        run = Run(run_path)
        try:
            check_deletable(run)  # a worker holds it: say whose, and that s stops it
        except UserError as exc:
            self.notify(f"{exc} (s)", severity="warning")
            return

        def confirmed(yes: bool | None) -> None:
            if not yes:
                return
            from bvae_tui.engine.runs.store import delete_run

            try:
                delete_run(run)
            except (UserError, OSError) as exc:
                self.notify(str(exc), severity="error")
                return
            self.notify(f"deleted {run.id}")
            if isinstance(self.screen, MonitorScreen) and self.screen.run.path == run.path:
                self.pop_screen()
            if on_done:
                on_done()
            self._refresh_runs()

        question = Text.assemble("Delete run ", (plain(run.id), "bold"),
                                 " and all its files (checkpoints, previews, exports)?")
        self.push_screen(ConfirmScreen(question, yes="Delete"), confirmed)

    def export_run(self, run_path: Path) -> None:
        if self._deleted(run_path):
            return
        run = Run(run_path)

        def chosen(options: ExportOptions | None) -> None:
            if options is not None:
                self.notify(f"exporting a traversal GIF of {run.id}…")
                self._export(run, options)

        self.push_screen(ExportScreen(run.id, run.exports_dir), chosen)

    @work(thread=True, group="export")
    def _export(self, run: Run, options: ExportOptions) -> None:
        try:
            from bvae_tui.engine.analysis.export import export_gif

            path = export_gif(run, output=options.output, images=options.images,
                              limit=options.limit, steps=options.steps,
                              data_dir=run.data_dir or self.data_root)
        except UserError as exc:
            self.post_message(ExportDone(run.id, None, str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - an export bug must not take the app down
            self.post_message(ExportDone(run.id, None, f"export failed: {exc!r}"))
            return
        self.post_message(ExportDone(run.id, Path(path), None))

    def on_export_done(self, message: ExportDone) -> None:
        if message.error:
            self.notify(message.error, severity="error", timeout=10)
            return
        assert message.path is not None
        self.exports[message.run_id] = message.path
        self.notify(f"wrote {message.path}", title="GIF exported", timeout=15)

    # Command palette ----------------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("New run", "Open the new-run form", self.action_new_run)
        yield SystemCommand("Help", "Keys of this screen", self.action_help)
        if isinstance(screen, RunsScreen):
            yield SystemCommand("Evaluate runs", "Score the marked runs (else the selected "
                                "sweep's members or run) in the background, fast or full",
                                screen.action_evaluate)
            yield SystemCommand("Compare runs", "The marked runs (or those in view) side by "
                                "side: curves, latents, scores, traversals", screen.action_compare)
            yield SystemCommand("Paper scores", "Scores of the runs in view beside the "
                                "paper's", screen.action_scores)
        target = self._palette_target(screen)
        if target is not None:
            # The palette reads help as Textual markup; the run folder's name may hold brackets.
            label = escape_markup(plain(target.name))
            yield SystemCommand("Open monitor", f"Watch {label} live",
                                lambda: self.open_monitor(target))
            yield SystemCommand("Stop run", f"Stop {label} (checkpoint first)",
                                lambda: self.stop_run(target))
            yield SystemCommand("Resume run", f"Resume {label} from its checkpoint",
                                lambda: self.resume_run(target))
            yield SystemCommand("Export traversal GIF", f"Export a GIF of {label}",
                                lambda: self.export_run(target))
            yield SystemCommand("Evaluate run", f"Score {label} in the background (fast or "
                                "full; writes eval.json)",
                                lambda: self.evaluate_runs([target]))
            yield SystemCommand("Explore model", f"Move the latents of {label} by hand",
                                lambda: self.open_explore(target))
            yield SystemCommand("Delete run", f"Delete {label} (asks first)",
                                lambda: self.delete_run(target))

    @staticmethod
    def _palette_target(screen: Screen) -> Path | None:
        if isinstance(screen, MonitorScreen):
            return screen.run.path
        if isinstance(screen, RunsScreen) and (row := screen.selected_row()):
            return Path(row.path)
        return None


def _in_sweep(run: Run) -> bool:
    try:
        return run.record().sweep is not None
    except UserError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bvae-tui", description="Terminal UI for beta-VAE runs: browse, launch, monitor.")
    parser.add_argument("--runs-dir", default=None,
                        help="where runs live [env BVAE_RUNS_DIR, default ./runs]")
    parser.add_argument("--data-dir", default=None,
                        help="where datasets are cached [env BVAE_DATA_DIR, default ./data]")
    args = parser.parse_args(argv)
    run_app(args.runs_dir, args.data_dir)
    return 0


def run_app(runs_dir: str | None = None, data_dir: str | None = None) -> None:
    from bvae_tui.tui.widgets.preview_image import probe

    probe()  # Kitty or Sixel graphics for previews: asked before Textual owns the terminal
    BvaeApp(runs_dir, data_dir).run()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
