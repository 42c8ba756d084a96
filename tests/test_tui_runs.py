"""Runs screen: every state listed, filters, delete with confirmation, and robustness against
missing or damaged run files (no traceback may reach the screen)."""

from __future__ import annotations

import json
import os
import shutil

from textual.widgets import DataTable

from bvae_tui.engine.runs.lock import lock_holder
from bvae_tui.tui.app import BvaeApp
from bvae_tui.tui.screens.confirm import ConfirmScreen
from bvae_tui.tui.screens.monitor import MonitorScreen
from bvae_tui.tui.screens.runs import RunsScreen
from bvae_tui.tui.screens.scores import ScoresScreen
from bvae_tui.tui.widgets.runs_table import RunsTable
from tests.tui_helpers import make_run, metrics_row, record_notes, screen_lines, sleeper, wait_for

SIZE = (140, 30)


def _cell(table: RunsTable, run_id: str, column: str) -> str:
    return str(table.get_cell(run_id, column))


async def test_runs_table_lists_every_state(runs_dir, tmp_path):
    live = sleeper()
    try:
        runs = {
            "queued": make_run(runs_dir, tmp_path, "q", "queued", pid=live.pid),
            "running": make_run(runs_dir, tmp_path, "r", "running", pid=live.pid),
            "finished": make_run(runs_dir, tmp_path, "f", "finished"),
            "stopped": make_run(runs_dir, tmp_path, "s", "stopped", objective="B", gamma=100.0,
                                c_max=20.0),
            "failed": make_run(runs_dir, tmp_path, "x", "failed",
                               error="loss became NaN at iteration 20; lower --lr"),
            # 'running' on disk, but its worker is gone: shown as lost.
            "lost": make_run(runs_dir, tmp_path, "l", "running", pid=2**22 + 12345),
        }
        (runs["finished"].eval_path).write_text(json.dumps(
            {"scores": {"betavae": 0.81, "factorvae": 0.7, "mig": 0.2}}))
        app = BvaeApp(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, RunsScreen)
            await wait_for(pilot, lambda: screen.loaded and len(screen.rows) == 6, 10,
                           "six runs")
            table = screen.query_one(RunsTable)
            assert table.row_count == 6
            for state, run in runs.items():
                assert _cell(table, run.id, "state") == state
                assert _cell(table, run.id, "iter").startswith("30/100")
            assert "NaN at iteration 20" in _cell(table, runs["failed"].id, "note")
            assert "is gone" in _cell(table, runs["lost"].id, "note")
            assert _cell(table, runs["finished"].id, "scores") == "BV 0.81 FV 0.70 MIG 0.20"
            assert _cell(table, runs["stopped"].id, "objective") == "B γ100 C20"
            assert _cell(table, runs["running"].id, "objective") == "H β4"
            assert _cell(table, runs["running"].id, "loss") == "33.33"

            # Filter by state (f cycles: all -> queued -> running ...), then by text.
            await pilot.press("f", "f")
            assert [r.state for r in screen.visible_rows()] == ["running"]
            assert table.row_count == 1
            await pilot.press("f", "f", "f", "f", "f")  # ... lost -> all
            assert screen.state_filter == "all" and table.row_count == 6
            await pilot.press("slash", *"fail", "enter")
            assert [r.state for r in screen.visible_rows()] == ["failed"]
            await pilot.press("slash", "ctrl+u", "enter")
            assert table.row_count == 6

            # Scores of the runs in view beside the paper's numbers.
            await pilot.press("p")
            await wait_for(pilot, lambda: isinstance(app.screen, ScoresScreen), 5, "scores")
            scores = app.screen.query_one(DataTable)
            rows = [[str(c) for c in scores.get_row_at(i)] for i in range(scores.row_count)]
            assert ["f", "-", "0.810", "0.700", "0.200"] in rows  # objective: in the title
            assert ["beta-VAE", "paper", "0.992", "", ""] in rows
            await pilot.press("escape")

            # A run that finishes elsewhere updates in place.
            runs["running"].write_status(state="finished", iteration=100)
            await wait_for(pilot, lambda: _cell(table, runs["running"].id, "state")
                           == "finished", 10, "the table to refresh")
    finally:
        live.kill()
        live.wait()


async def test_delete_asks_first(runs_dir, tmp_path):
    run = make_run(runs_dir, tmp_path, "doomed", "finished")
    app = BvaeApp(runs_dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.rows, 10, "the run")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the modal")
        await pilot.press("n")  # no: nothing happens
        await pilot.pause()
        assert run.path.exists() and isinstance(app.screen, RunsScreen)
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the modal")
        await pilot.press("y")
        await wait_for(pilot, lambda: not run.path.exists(), 5, "the run to go")
        await wait_for(pilot, lambda: not screen.rows, 10, "the table to empty")


async def test_delete_refused_while_running(runs_dir, tmp_path):
    live = sleeper()
    try:
        run = make_run(runs_dir, tmp_path, "busy", "running", pid=live.pid)
        app = BvaeApp(runs_dir)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.screen.rows, 10, "the run")
            await pilot.press("d")
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmScreen)
            assert run.path.exists()
    finally:
        live.kill()
        live.wait()


async def test_missing_runs_dir_is_just_empty(tmp_path):
    app = BvaeApp(tmp_path / "nowhere" / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.loaded, 10, "a poll")
        assert screen.rows == []
        assert "no runs yet" in str(screen.query_one("#runs-title").render())
        await pilot.press("enter", "s", "e", "d")  # nothing selected: warnings only
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)


async def test_damaged_files_and_run_deleted_while_shown(runs_dir, tmp_path):
    bad_status = make_run(runs_dir, tmp_path, "badstatus", "finished")
    bad_status.status_path.write_text("{not json")
    bad_config = make_run(runs_dir, tmp_path, "badconfig", "stopped")
    bad_config.config_path.write_text("[]")
    torn = make_run(runs_dir, tmp_path, "torn", "stopped")
    with open(torn.metrics_path, "a") as fh:
        fh.write("garbage line\n" + metrics_row(40).to_line() + '{"iter": 5')
    odd = make_run(runs_dir, tmp_path, "odd", "stopped")
    odd.status_path.write_text(json.dumps({"state": "running", "pid": "abc"}))
    with open(odd.metrics_path, "a") as fh:  # valid JSON, wrong shapes
        fh.write(json.dumps({"iter": 50, "loss": "x", "kl_per_latent": 5, "mu_mean": 1}) + "\n")
    app = BvaeApp(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.rows) == 4, 10, "four runs")
        rows = {r.id: r for r in screen.rows}
        assert rows[bad_status.id].state == "failed"
        assert "corrupt" in rows[bad_status.id].error
        assert "corrupt" in rows[bad_config.id].error
        assert rows[torn.id].loss == 25.0  # the valid row after the garbage one

        # Open the monitor on each damaged run: it shows what it can.
        assert rows[odd.id].state in ("failed", "lost")
        for run in (bad_status, bad_config, torn, odd):
            app.open_monitor(run.path)
            await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), 5, "monitor")
            mon = app.screen
            await wait_for(pilot, lambda m=mon: m.status.state, 5,  # type: ignore[misc]
                           "a status")
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 5, "runs")
        app.open_monitor(torn.path)
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), 5, "monitor")
        mon = app.screen
        await wait_for(pilot, lambda: mon.history.rows_seen == 4, 5, "four valid rows")
        shutil.rmtree(torn.path)  # deleted from another terminal while shown
        await wait_for(pilot, lambda: mon.gone, 5, "the monitor to notice")
        assert "deleted" in str(mon.query_one("#mon-header").render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(screen.rows) == 3, 10, "the table to drop it")


async def _open_scores(app, pilot) -> tuple[DataTable, str]:
    """From the runs screen to the scores screen: its table and its note."""
    await wait_for(pilot, lambda: app.screen.rows, 10, "the run")
    await pilot.press("p")
    await wait_for(pilot, lambda: isinstance(app.screen, ScoresScreen), 5, "scores")
    await pilot.pause()
    return app.screen.query_one(DataTable), str(app.screen.query_one("#scores-note").render())


async def test_scores_fit_80_columns(runs_dir, tmp_path):
    run = make_run(runs_dir, tmp_path, "dsprites-B-g100-c20-long-name", "finished",
                   objective="B", gamma=100.0, c_max=20.0)
    run.eval_path.write_text(json.dumps({"iteration": 300000, "fast": True,
                                         "scores": {"betavae": 0.81, "factorvae": 0.7,
                                                    "mig": 0.2}}))
    app = BvaeApp(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        table, note = await _open_scores(app, pilot)
        # Every column on screen, with no sideways scrolling needed.
        assert table.region.right <= 80
        assert table.virtual_size.width <= table.scrollable_content_region.width
        row = [str(c) for c in table.get_row_at(0)]
        assert row == ["dsprites-B-g100-c20-long-name", "300k*", "0.810", "0.700", "0.200"]
        title = str(app.screen.query_one(".title").render())
        assert "B γ100 C20 · dsprites-mini" in title  # what every run shares
        assert "* fast eval" in note and "exact" not in note


async def test_scores_mark_exact_evaluations(runs_dir, tmp_path):
    run = make_run(runs_dir, tmp_path, "exact-run", "finished")
    run.eval_path.write_text(json.dumps({"iteration": 3000, "exact": True,
                                         "scores": {"betavae": 0.8, "dci": 0.1}}))
    app = BvaeApp(runs_dir)
    async with app.run_test(size=(100, 24)) as pilot:
        table, note = await _open_scores(app, pilot)
        row = [str(c) for c in table.get_row_at(0)]
        assert row[:2] == ["exact-run", "3000†"]
        assert "† exact eval" in note


async def test_monitor_header_fits_80_columns(runs_dir, tmp_path):
    live = sleeper()
    try:
        run = make_run(runs_dir, tmp_path, "dsprites-B-g100-c20-with-a-rather-long-name",
                       "running", pid=live.pid, objective="B", gamma=100.0, c_max=20.0)
        run.write_status(total=300000, iteration=302)
        run.eval_path.write_text(json.dumps({"scores": {"betavae": 0.81, "factorvae": 0.7,
                                                        "mig": 0.2}}))
        app = BvaeApp(runs_dir)
        async with app.run_test(size=(80, 24)) as pilot:
            app.open_monitor(run.path)
            await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), 5, "monitor")
            mon = app.screen
            await wait_for(pilot, lambda: mon.history.rows_seen and mon.scores, 5, "data")
            await pilot.pause()
            header = mon.query_one("#mon-header")
            assert header.region.height == 3
            lines = str(header.render()).split("\n")
            assert len(lines) == 3
            assert all(len(line) <= header.content_region.width for line in lines), lines
            # The name is cut in the middle (its start and end stay); the scores join the
            # losses; the id comes first on line 3, whole, then the objective.
            assert lines[0].startswith("running dsprites") and "…" in lines[0]
            assert "long-name ▕" in lines[0] and lines[0].endswith("302/300000 0%")
            assert "KL 3.00" in lines[1] and "img/s" in lines[1] and "ETA" in lines[1]
            assert lines[2].startswith(run.id) and "B γ100 C20" in lines[2]
            assert "BV 0.81 FV 0.70 MIG 0.20" in lines[1]
    finally:
        live.kill()
        live.wait()


async def test_cursor_follows_launched_and_opened_runs(runs_dir, tmp_path, monkeypatch):
    import bvae_tui.engine.runs.launch

    a = make_run(runs_dir, tmp_path, "run-a", "finished")
    launched = {}

    def fake_start_run(config, root, data_dir, name):
        launched["run"] = make_run(root, tmp_path, name, "finished")
        return launched["run"]

    monkeypatch.setattr(bvae_tui.engine.runs.launch, "start_run", fake_start_run)
    app = BvaeApp(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.rows, 10, "run A")
        assert screen.selected_row().id == a.id
        app.launch_run(None, "run-b", on_launched=app.open_monitor)
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), 5, "monitor")
        b = launched["run"]
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 5, "runs")
        await wait_for(pilot, lambda: len(screen.rows) == 2, 10, "run B listed")
        await pilot.pause()
        assert screen.selected_row().id == b.id  # s, r, e, d now act on B
        # Back from a monitor opened some other way (the palette): the cursor is on that run.
        app.open_monitor(a.path)
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), 5, "monitor")
        app.open_monitor(a.path)  # already watching it: no second copy
        await pilot.pause()
        assert sum(isinstance(s, MonitorScreen) for s in app.screen_stack) == 1
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 5, "runs")
        assert screen.selected_row().id == a.id



async def test_monitor_actions_on_a_deleted_run(runs_dir, tmp_path):
    run = make_run(runs_dir, tmp_path, "gone", "stopped")
    app = BvaeApp(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        notes = record_notes(app)
        app.open_monitor(run.path)
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), 5, "monitor")
        mon = app.screen
        shutil.rmtree(run.path)
        await wait_for(pilot, lambda: mon.gone, 5, "the monitor to notice")
        notes.clear()
        for key in ("s", "r", "e"):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen is mon  # no export dialog
        assert notes == [f"run {run.id} was deleted"] * 3


async def test_resume_without_checkpoint_starts_from_zero(runs_dir, tmp_path, monkeypatch):
    import bvae_tui.engine.runs.resume

    launched = []

    def fake_launch(run, resume=False, lock=None, changes=None):
        launched.append((run.id, resume, lock_holder(run)))
        lock.release()
        return 4242

    monkeypatch.setattr(bvae_tui.engine.runs.resume, "launch", fake_launch)
    run = make_run(runs_dir, tmp_path, "early", "stopped")  # iteration 30, no checkpoint
    finished = make_run(runs_dir, tmp_path, "done", "finished")
    app = BvaeApp(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        notes = record_notes(app)
        await wait_for(pilot, lambda: len(app.screen.rows) == 2, 10, "the runs")
        app.resume_run(run.path)
        app.resume_run(finished.path)
        # (each resume runs in a thread, which may wait for a worker that is exiting)
        await wait_for(pilot, lambda: sum("worker pid" in n or "already finished" in n
                                          for n in notes) == 2, 20, "both resumes' answers")
    # The worker is started holding the run's lock, told to resume (from 0: no checkpoint).
    assert launched == [(run.id, True, os.getpid())]
    assert any("training it again from iteration 0 (30 iterations are retrained)" in note
               and "worker pid 4242" in note for note in notes), notes
    assert any("already finished" in note for note in notes), notes


async def test_small_terminal_details(runs_dir, tmp_path):
    from textual.widgets import Input

    run = make_run(runs_dir, tmp_path, "a-run-with-a-name-long-enough-to-push-the-path", "stopped",
                   rows=40)
    app = BvaeApp(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.rows, 10, "the run")
        # A filter that matches nothing says so.
        await pilot.press("slash", *"zzz", "enter")
        await pilot.pause()
        assert "no runs match" in str(screen.query_one("#runs-details").render())
        await pilot.press("slash", "ctrl+u", "enter")
        await pilot.pause()
        # The monitor's footer fits 80 columns and PgDn scrolls down to the preview and log.
        app.open_monitor(run.path)
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), 5, "monitor")
        mon = app.screen
        # (waited for: a loaded machine may need a few frames to draw the new screen's footer)
        await wait_for(pilot, lambda: "q Quit" in "".join(screen_lines(app)[-1:]), 5,
                       "the footer")
        footer = screen_lines(app)[-1]
        assert "q Quit" in footer and "PgDn Log" in footer, footer
        body = mon.query_one("#mon-body")
        assert body.scroll_y == 0
        await pilot.press("pagedown")
        await pilot.pause()
        assert body.scroll_y > 0
        # The export dialog's default output ends visibly, cut at the front.
        await pilot.press("e")
        await wait_for(pilot, lambda: not isinstance(app.screen, MonitorScreen), 5, "export")
        output = app.screen.query_one("#exp-output", Input)
        assert output.placeholder.startswith("…") and output.placeholder.endswith("exports/…gif")
        assert len(output.placeholder) <= output.content_region.width
