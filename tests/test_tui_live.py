"""End to end with the real detached worker: launch a tiny CPU run from the form, watch the
monitor advance as the worker writes, export a GIF from the TUI; stop and resume from the TUI."""

from __future__ import annotations

from pathlib import Path

import bvae_tui.engine.runs.devices
from bvae_tui.engine.config import make_config
from bvae_tui.engine.runs.launch import launch
from bvae_tui.engine.runs.store import Run, create_run, list_runs
from bvae_tui.tui.app import BvaeApp
from bvae_tui.tui.screens.export import ExportScreen
from bvae_tui.tui.screens.monitor import MonitorScreen
from bvae_tui.tui.screens.new_run import NewRunScreen
from bvae_tui.tui.screens.runs import RunsScreen
from bvae_tui.tui.widgets.curve_plot import CurvePlot
from bvae_tui.tui.widgets.device_picker import DevicePicker
from bvae_tui.tui.widgets.halfblock_image import HalfBlockImage
from bvae_tui.tui.widgets.kl_bars import KLBars
from tests.tui_helpers import wait_for


def _no_nvml():
    raise ImportError("No module named 'pynvml'")


async def test_launch_from_form_monitor_follows_worker_then_export(runs_dir, env_data,
                                                                   monkeypatch):
    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", _no_nvml)
    app = BvaeApp(runs_dir, env_data)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen), 5, "the form")
        form = app.screen
        await wait_for(pilot, lambda: form.query_one(DevicePicker).loaded, 10, "devices")
        for name, value in {"dataset": "dsprites-mini", "iterations": "24", "z_dim": "4",
                            "batch_size": "16", "log_every": "2", "checkpoint_every": "12",
                            "preview_every": "12"}.items():
            form.set_field(name, value)
        form.query_one("#run-name").value = "tui-live"
        await pilot.pause()
        assert form.revalidate(), form.errors
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), 10, "monitor")
        monitor = app.screen
        [run] = list_runs(runs_dir)
        assert monitor.run.path == run.path and run.name == "tui-live"
        assert run.config.iterations == 24 and run.config.device == "cpu"

        # The monitor follows the worker's writes: several distinct row counts go by.
        seen: set[int] = set()

        def finished() -> bool:
            seen.add(monitor.history.rows_seen)
            return monitor.status.state == "finished" and monitor.history.rows_seen == 12

        await wait_for(pilot, finished, 90, "the run to finish in the monitor")
        assert len(seen - {0}) >= 2, f"monitor jumped straight to the end: {seen}"
        assert monitor.iteration == 24
        assert monitor.query_one("#plot-loss", CurvePlot)._xs.size == 12
        assert len(monitor.query_one(KLBars).kl) == 4
        await wait_for(pilot, lambda: monitor.query_one(HalfBlockImage).image is not None, 10,
                       "the traversal preview")
        assert "finished" in str(monitor.query_one("#mon-header").render())
        assert any("worker" in line for line in monitor.query_one("#mon-log")._shown)

        # Export a GIF from the monitor through the modal.
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen), 5, "export modal")
        modal = app.screen
        modal.query_one("#exp-steps").value = "4"
        out = Path(run.path) / "exports" / "from-tui.gif"
        modal.query_one("#exp-output").value = str(out)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: run.id in app.exports, 60, "the export")
        assert app.exports[run.id] == out
        data = out.read_bytes()
        assert data[:6] in (b"GIF89a", b"GIF87a") and len(data) > 100
        import imageio.v3 as iio

        assert iio.imread(out, index=None).shape[0] == 4  # one frame per step


async def test_stop_from_tui(runs_dir, env_data):
    cfg = make_config(None, dataset="dsprites-mini", iterations=100_000, z_dim=4, batch_size=8,
                      log_every=5, checkpoint_every=100_000, preview_every=0, device="cpu")
    run = create_run(runs_dir, cfg, env_data, name="long")
    launch(run)
    try:
        app = BvaeApp(runs_dir, env_data)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = app.screen
            assert isinstance(screen, RunsScreen)

            def state() -> str | None:
                row = screen.rows[0] if screen.rows else None
                return row.state if row else None

            await wait_for(pilot, lambda: state() == "running"
                           and screen.rows[0].iteration > 0, 60, "the worker to train")
            # The dataset column says where the images come from (procedural dSprites here).
            assert screen.rows[0].source == "procedural"
            assert "dsprites-mini (proc)" in str(screen.query_one("#runs-table").get_cell(
                run.id, "dataset"))
            await pilot.press("s")
            await wait_for(pilot, lambda: state() == "stopped", 60, "the run to stop")
            assert Run(run.path).status().state == "stopped"
            assert run.last_checkpoint.exists()  # it checkpointed before stopping

            # Resume from the TUI: the worker continues from the checkpoint's iteration.
            stopped_at = Run(run.path).status().iteration
            await pilot.press("r")
            await wait_for(pilot, lambda: state() == "running"
                           and screen.rows[0].iteration > stopped_at, 60, "the resumed run")
            await pilot.press("s")
            await wait_for(pilot, lambda: state() == "stopped", 60, "the run to stop again")
    finally:
        if Run(run.path).status().active:
            from bvae_tui.engine.runs.launch import stop

            stop(Run(run.path), wait=20)
