"""The app's sweep actions (launch, open, stop, resume, delete; a whole sweep or one member).

A mixin of :class:`bvae_tui.tui.app.BvaeApp`. Starting or stopping a sweep waits for its
scheduler (a second or two), so those calls run in thread workers and report back with a
notification; every :class:`UserError` is one line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work

from bvae_tui.engine.runs.store import Run
from bvae_tui.errors import UserError
from bvae_tui.safe_text import plain
from bvae_tui.tui.messages import SweepLaunched
from bvae_tui.tui.screens.confirm import ConfirmScreen


class SweepActions:
    """Sweep actions for the app (see the module doc)."""

    runs_root: Path
    data_root: Path
    _on_sweep_launched: Callable[[Path], None] | None = None

    # Opening and launching --------------------------------------------------------------------
    def open_sweep(self: Any, sweep_path: Path) -> None:
        from bvae_tui.tui.screens.sweep import SweepScreen

        if not sweep_path.is_dir():
            self.notify(f"sweep {sweep_path.name} no longer exists", severity="error")
            return
        if isinstance(self.screen, SweepScreen) and self.screen.sweep.path == sweep_path:
            return
        self.push_screen(SweepScreen(sweep_path))

    def launch_sweep(self: Any, spec: Any,
                     on_launched: Callable[[Path], None] | None = None,
                     yes: bool = False) -> None:
        """``yes``: the user confirmed a grid of more than MAX_MEMBERS (the CLI's --yes)."""
        self._on_sweep_launched = on_launched
        self.notify(f"creating a sweep of {spec.count():,} members…")
        self._create_sweep(spec, yes)

    @work(thread=True, group="sweeps", exit_on_error=False)
    def _create_sweep(self: Any, spec: Any, yes: bool = False) -> None:
        from bvae_tui.engine.runs.sweeps import control

        try:
            sweep, plan = control.create(spec, self.runs_root, self.data_root, yes=yes)
        except UserError as exc:
            self.post_message(SweepLaunched(None, str(exc), []))
            return
        self.post_message(SweepLaunched(sweep.path, None, plan.notes))

    def on_sweep_launched(self: Any, message: SweepLaunched) -> None:
        if message.error or message.path is None:
            self.notify(message.error or "the sweep was not created", severity="error",
                        timeout=10)
            return
        for note in message.notes:
            self.notify(note, severity="warning" if note.startswith("warning") else "information")
        self.notify(f"started sweep {message.path.name}")
        self._refresh_runs()
        if self._on_sweep_launched is not None:
            self._on_sweep_launched(message.path)

    # Stop, resume, delete -----------------------------------------------------------------------
    @work(thread=True, group="sweeps", exit_on_error=False)
    def stop_sweep(self: Any, sweep_path: Path) -> None:
        from bvae_tui.engine.runs.sweeps import control
        from bvae_tui.engine.runs.sweeps.store import Sweep

        self._in_thread(lambda: control.stop(Sweep(sweep_path)),
                        f"stopping sweep {sweep_path.name}: running members checkpoint")

    @work(thread=True, group="sweeps", exit_on_error=False)
    def resume_sweep(self: Any, sweep_path: Path) -> None:
        from bvae_tui.engine.runs.sweeps import control
        from bvae_tui.engine.runs.sweeps.store import Sweep

        self._in_thread(lambda: control.resume(Sweep(sweep_path)),
                        f"resumed sweep {sweep_path.name}")

    @work(thread=True, group="sweeps", exit_on_error=False)
    def resume_member(self: Any, run_path: Path) -> None:
        """Put a stopped, failed or lost member back in its sweep's queue."""
        from bvae_tui.engine.runs.sweeps import control

        def requeue() -> None:
            run = Run(run_path)
            control.resume_member(control.sweep_of(run), run)

        self._in_thread(requeue, f"{run_path.name} is queued again in its sweep")

    def _in_thread(self: Any, action: Callable[[], Any], done: str) -> None:
        try:
            action()
        except UserError as exc:
            self.call_from_thread(self.notify, str(exc), severity="warning")
            return
        self.call_from_thread(self.notify, done)
        self.call_from_thread(self._refresh_runs)

    def delete_sweep(self: Any, sweep_path: Path,
                     on_done: Callable[[], None] | None = None) -> None:
        from bvae_tui.engine.runs.sweeps.store import Sweep

        sweep = Sweep(sweep_path)
        try:
            members = len(sweep.record().members)
        except UserError:
            members = 0

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._delete_sweep(sweep_path, on_done)

        question = Text.assemble("Delete sweep ", (plain(sweep.id), "bold"),
                                 f" and its {members} member runs (checkpoints, previews, "
                                 "exports)?")
        self.push_screen(ConfirmScreen(question, yes="Delete"), confirmed)

    @work(thread=True, group="sweeps", exit_on_error=False)
    def _delete_sweep(self: Any, sweep_path: Path, on_done: Callable[[], None] | None) -> None:
        from bvae_tui.engine.runs.sweeps import control
        from bvae_tui.engine.runs.sweeps.store import Sweep

        self._in_thread(lambda: control.remove(Sweep(sweep_path)),
                        f"deleted sweep {sweep_path.name}")
        if on_done is not None:
            self.call_from_thread(on_done)
