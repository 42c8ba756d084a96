"""The app's evaluate action: score runs in a detached process (`bvae eval --detach`'s path).

A mixin of :class:`bvae_tui.tui.app.BvaeApp`. The screens gather which runs (the selected run,
the marked runs, a sweep's members); this asks fast or full, then launches
:func:`bvae_tui.engine.runs.eval_job.launch_eval` in a thread (it checks each run's locks and
checkpoint) and says in one line what started and what was left out. Progress shows in the
runs table and the monitor, read from each run's eval_job.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text

from bvae_tui.engine.runs.store import Run
from bvae_tui.errors import UserError
from bvae_tui.safe_text import plain


class EvalActions:
    """Evaluate actions for the app (see the module doc)."""

    def evaluate_runs(self: Any, paths: list[Path], what: str | None = None) -> None:
        """Ask fast or full, then score ``paths`` one after another in the background.
        ``what``: how the question names them (default: the run's id, or a count)."""
        from bvae_tui.tui.screens.evaluate import EvaluateScreen

        paths = [p for p in paths if p.is_dir()]
        if not paths:
            self.notify("no runs to evaluate", severity="warning")
            return
        label = Text(plain(what) if what else plain(paths[0].name) if len(paths) == 1
                     else f"{len(paths)} runs", style="bold")

        def chosen(choice: str | None) -> None:
            if choice is not None:
                self.run_worker(lambda: self._launch_eval(paths, choice == "fast"),
                                thread=True, group="evaluate", exit_on_error=False)

        self.push_screen(EvaluateScreen(label), chosen)

    def _launch_eval(self: Any, paths: list[Path], fast: bool) -> None:
        from bvae_tui.engine.runs.eval_job import launch_eval

        try:
            started = launch_eval([Run(p) for p in paths], fast=fast)
        except UserError as exc:
            self.call_from_thread(self.notify, str(exc), severity="warning")
            return
        names = started.runs[0].id if len(started.runs) == 1 else f"{len(started.runs)} runs"
        line = (f"evaluating {names}{' (fast)' if fast else ''} in the background "
                f"(pid {started.pid})")
        if started.refused:
            line += f"; left out {len(started.refused)}: {started.refused[0]}"
        self.call_from_thread(self.notify, line, severity="warning" if started.refused
                              else "information")
        self.call_from_thread(self._refresh_runs)
