"""Scoring from the TUI: `E` on the runs table, the monitor and the sweep screen asks fast or
full, launches a real detached evaluation, shows its progress and then the scores; a run being
trained is refused in one line."""

from __future__ import annotations

import json

import pytest

from bvae_tui.engine.runs.eval_job import job_status
from bvae_tui.engine.runs.lock import RunLock
from bvae_tui.engine.runs.store import Run
from bvae_tui.tui.app import BvaeApp
from bvae_tui.tui.screens.evaluate import EvaluateScreen
from bvae_tui.tui.screens.help import HelpScreen
from bvae_tui.tui.screens.monitor import MonitorScreen
from bvae_tui.tui.screens.runs import RunsScreen
from bvae_tui.tui.widgets.runs_table import RunsTable
from tests.tui_helpers import record_notes, screen_lines, wait_for


@pytest.fixture
def trained(runs_dir, env_data) -> Run:
    """A tiny run trained here (10 steps, a real checkpoint), finished."""
    from bvae_tui.engine.train.trainer import train
    from tests.test_trainer import _run

    run = _run(runs_dir, env_data, name="tiny", iterations=10)
    assert train(run) == "finished"
    return run


def _note(app: BvaeApp, run: Run) -> str:
    screen = app.runs_screen
    row = next((r for r in screen.rows if r.id == run.id), None) if screen else None
    return row.error if row else ""



async def test_E_scores_the_run_in_the_background_and_the_table_shows_it(trained, runs_dir,
                                                                         env_data):
    app = BvaeApp(runs_dir, env_data)
    async with app.run_test(size=(100, 32)) as pilot:
        table = app.screen.query_one(RunsTable)
        await wait_for(pilot, lambda: table.row_count == 1, 20, "the run listed")
        await pilot.press("E")
        await wait_for(pilot, lambda: isinstance(app.screen, EvaluateScreen), 5, "the question")
        await pilot.press("f")  # fast
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), 5, "back")
        seen: set[str] = set()

        def progress_seen() -> bool:
            seen.add(_note(app, trained))
            return any(n.startswith(("evaluation queued", "evaluating")) for n in seen)

        await wait_for(pilot, progress_seen, 20, "the evaluation's progress in the note column")
        assert job_status(trained).pid  # a real process, detached from this app
        await wait_for(pilot, lambda: job_status(trained).state in ("finished", "failed"), 300,
                       "the evaluation to end")
        assert job_status(trained).state == "finished", job_status(trained).error
        saved = json.loads(trained.eval_path.read_text())
        assert saved["fast"] is True and "betavae" in saved["scores"]
        await wait_for(pilot, lambda: any("BV " in line for line in screen_lines(app)), 10,
                       "the scores column")
        assert not _note(app, trained).startswith("evaluat")


async def test_E_on_a_run_being_trained_is_refused_in_one_line(trained, runs_dir, env_data):
    app = BvaeApp(runs_dir, env_data)
    async with app.run_test(size=(80, 24)) as pilot:
        notes = record_notes(app)
        table = app.screen.query_one(RunsTable)
        await wait_for(pilot, lambda: table.row_count == 1, 20, "the run listed")
        with RunLock(trained):  # a trainer holds it
            await pilot.press("E")
            await wait_for(pilot, lambda: isinstance(app.screen, EvaluateScreen), 5, "question")
            await pilot.pause()
            shown = "\n".join(screen_lines(app))  # at 80x24 the whole question fits
            assert "Fast (f)" in shown and "Full (u)" in shown and trained.id in shown, shown
            await pilot.press("u")
            await wait_for(pilot, lambda: any("is training" in n for n in notes), 20,
                           "the refusal")
        assert job_status(trained) is None and not trained.eval_path.exists()
        refusal = next(n for n in notes if "is training" in n)
        assert "\n" not in refusal and "Traceback" not in refusal


async def test_the_monitor_offers_evaluate_and_shows_a_failure(trained, runs_dir, env_data):
    from bvae_tui.engine.runs.eval_job import write_job
    from bvae_tui.engine.runs.records import EvalJob

    write_job(trained, EvalJob(state="failed", error="no readable checkpoint (truncated)"))
    app = BvaeApp(runs_dir, env_data)
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_monitor(trained.path)
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), 10, "monitor")
        await wait_for(pilot, lambda: any("evaluation failed" in line
                                          for line in screen_lines(app)), 10, "the failure")
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), 5, "help")
        assert "evaluate the run" in app.screen.text
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), 5, "monitor")
        await pilot.press("E")
        await wait_for(pilot, lambda: isinstance(app.screen, EvaluateScreen), 5, "the question")
        await pilot.press("escape")  # cancelled: nothing starts
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), 5, "monitor")
        assert job_status(trained).state == "failed"


def test_evaluate_is_in_help_and_the_palette(trained, runs_dir):
    from bvae_tui.tui.screens.monitor import HELP as MONITOR_HELP
    from bvae_tui.tui.screens.runs import HELP as RUNS_HELP
    from bvae_tui.tui.screens.sweep import HELP as SWEEP_HELP

    for text in (RUNS_HELP, MONITOR_HELP, SWEEP_HELP):
        assert "| `E` | evaluate" in text
    app = BvaeApp(runs_dir)
    names = [c.title for c in app.get_system_commands(MonitorScreen(trained.path))]
    assert "Evaluate run" in names
