"""Helpers shared by the TUI tests (not a test module)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bvae_tui.engine.config import make_config
from bvae_tui.engine.runs.process import process_start_time
from bvae_tui.engine.runs.records import MetricsRow
from bvae_tui.engine.runs.store import Run, create_run


async def wait_for(pilot: Any, condition: Callable[[], Any], timeout: float = 30.0,
                   what: str = "condition") -> Any:
    """Let the app run until ``condition()`` is truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await pilot.pause(0.1)
        await asyncio.sleep(0)


def make_run(root: Path, data_dir: Path, name: str, state: str, *, pid: int | None = None,
             error: str | None = None, rows: int = 3, **config: Any) -> Run:
    """A run directory in ``state`` with a few metrics rows, written the way the worker does."""
    cfg = make_config(None, **{"dataset": "dsprites-mini", "iterations": 100, "z_dim": 4,
                               **config})
    run = create_run(root, cfg, data_dir, name=name)
    fields: dict[str, Any] = {"state": state, "iteration": rows * 10, "total": 100,
                              "started": time.time() - 60, "device": "cpu"}
    if pid is not None:
        fields.update(pid=pid, pid_start=process_start_time(pid))
    if error is not None:
        fields["error"] = error
    run.write_status(**fields)
    with open(run.metrics_path, "w") as fh:
        for i in range(1, rows + 1):
            fh.write(metrics_row(i * 10).to_line())
    return run


def metrics_row(iteration: int, z_dim: int = 4) -> MetricsRow:
    return MetricsRow(iter=iteration, time=time.time(), elapsed=iteration / 10,
                      loss=1000.0 / iteration, recon=900.0 / iteration, kl=3.0,
                      kl_per_latent=[2.0, 0.9, 0.05, 0.0][:z_dim], mu_mean=[0.1] * z_dim,
                      var_mean=[0.5] * z_dim, c=None, img_per_s=500.0)


def sleeper() -> subprocess.Popen:
    """A live process whose pid can stand in for a running worker."""
    return subprocess.Popen(["sleep", "120"])


def screen_lines(app: Any) -> list[str]:
    """The text on the terminal, one string per row (what a user at that size sees)."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def record_notes(app: Any) -> list[str]:
    """Every notification the app shows from now on, as text (they vanish from the screen)."""
    notes: list[str] = []
    notify = app.notify

    def record(message: Any, *args: Any, **kwargs: Any) -> Any:
        notes.append(str(message))
        return notify(message, *args, **kwargs)

    app.notify = record
    return notes


async def open_monitor(app: Any, pilot: Any, run: Any) -> Any:
    """The monitor of ``run``, composed and watching (its first metrics rows read)."""
    from bvae_tui.tui.screens.monitor import MonitorScreen

    app.open_monitor(run.path)
    await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), 5, "monitor")
    mon = app.screen
    await wait_for(pilot, lambda: mon.history.rows_seen, 5, "metrics")
    return mon
