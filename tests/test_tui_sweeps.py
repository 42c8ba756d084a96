"""Sweeps in the TUI: lists in the new-run form make a sweep, the runs table folds members under
their sweep, and the sweep screen shows the grid and the queue and acts on one member or all.
The scheduler is not started here (its tests start real workers): starting one is recorded."""

from __future__ import annotations

import time

import bvae_tui.engine.runs.devices
from bvae_tui.engine.config import TrainConfig
from bvae_tui.engine.runs.store import Run
from bvae_tui.engine.runs.sweeps import control
from bvae_tui.engine.runs.sweeps.store import list_sweeps
from bvae_tui.tui.app import BvaeApp
from bvae_tui.tui.screens.compare import CompareScreen
from bvae_tui.tui.screens.sweep import SweepScreen
from bvae_tui.tui.widgets.choice_field import ChoiceField
from bvae_tui.tui.widgets.runs_table import RunsTable
from tests.sweep_helpers import tiny_spec
from tests.test_tui_new_run import _open_form
from tests.tui_helpers import make_run, metrics_row, screen_lines, sleeper, wait_for


async def test_form_lists_launch_a_sweep(runs_dir, env_data, schedulers):
    app = BvaeApp(runs_dir, env_data)
    async with app.run_test(size=(100, 40)) as pilot:
        form = await _open_form(app, pilot)
        form.set_field("dataset", "dsprites-mini")
        form.set_field("iterations", "50")
        form.set_field("beta", "1,4")
        form.set_field("seed", "1..3")
        objective = form.query_one("#f-objective", ChoiceField)
        objective.focus()
        await pilot.press("right", "space")  # H stays picked, B is added: a sweep of both
        await pilot.pause()
        assert objective.field_value == ["H", "B"]
        # B does not use beta: sweeping it would repeat the B members, so the form says so
        assert not form.revalidate()
        assert "objective B does not use it" in form.errors["beta"]
        form.set_field("beta", "2")  # one value is fine: it goes to the H members
        await pilot.pause()
        assert form.revalidate()
        assert form.axes == {"objective": ["H", "B"], "seed": [1, 2, 3]}
        command = str(form.query_one("#form-command").render())
        assert "a sweep of 6 members (objective x seed)" in command
        assert ("bvae sweep --dataset dsprites-mini --objective H,B --beta 2 "
                "--iterations 50 --seed 1,2,3") in command
        # gamma and c_max are shown again: objective B is among the picks
        assert form.query_one("#row-gamma").display
        # A list the grammar refuses is marked on its field and blocks the launch.
        form.set_field("seed", "3..1")
        await pilot.pause()
        assert "runs backwards" in form.errors["seed"]
        form.set_field("seed", "1..3")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, SweepScreen), 60, "the sweep")
        (sweep,) = list_sweeps(runs_dir)
        assert schedulers == [sweep.id]
        record = sweep.record()
        assert record.axes == ["objective", "seed"] and len(record.members) == 6
        betas = {Run(runs_dir / m).config.objective: Run(runs_dir / m).config.beta
                 for m in record.members}
        assert betas == {"H": 2.0, "B": TrainConfig().beta}  # B's is the default, unused
        # without NVML the picker offers the CPU only
        assert record.fixed == {"dataset": "dsprites-mini", "iterations": 50, "beta": 2.0,
                                "device": "cpu"}


def _sweep_with_states(runs_dir, data_dir):
    """A 2x2 sweep (beta x seed) whose members are finished, running, queued and stopped."""
    sweep, _ = control.create(tiny_spec(30, 10, beta="1,4", seed="1,2", device="cpu"),
                              runs_dir, data_dir)
    done, running, waiting, stopped = sweep.members()
    with open(done.metrics_path, "w") as fh:
        for i in (10, 20, 30):
            fh.write(metrics_row(i).to_line())
    done.write_status(state="finished", iteration=30, started=time.time() - 60)
    worker = sleeper()
    running.write_status(state="running", iteration=10, pid=worker.pid, device="cpu",
                         pid_start=bvae_tui.engine.runs.process.process_start_time(worker.pid),
                         started=time.time() - 30)
    stopped.write_status(state="stopped", iteration=10, error="stopped by hand")
    return sweep, worker, (done, running, waiting, stopped)


async def test_runs_table_folds_members_under_their_sweep(runs_dir, env_data, schedulers):
    sweep, worker, (done, running, waiting, stopped) = _sweep_with_states(runs_dir, env_data)
    plain = make_run(runs_dir, env_data, "plain", "finished")
    app = BvaeApp(runs_dir, env_data)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            screen = app.screen
            await wait_for(pilot, lambda: screen.sweeps and screen.rows, 20, "the runs")
            table = screen.query_one(RunsTable)
            key = f"sweep:{sweep.id}"
            # The table fills on the refresh after the rows are read: waited for, not assumed
            # (under load it lagged, and the test failed once more here).
            await wait_for(pilot, lambda: set(table.rows_shown) == {key, plain.id}, 10,
                           "the members folded away under their sweep")
            (row,) = screen.sweeps
            assert (row.members, row.finished, row.state) == (4, 1, "lost")  # no scheduler
            assert dict(row.counts) == {"finished": 1, "running": 1, "queued": 1, "stopped": 1}
            # What is read off the screen is waited for: under load a redraw can lag a frame.
            await wait_for(pilot, lambda: any("▸ " in line and "1/4" in line
                                              for line in screen_lines(app)), 10, "the sweep")
            table.select(key)
            await pilot.press("space")
            await wait_for(pilot, lambda: any("beta=4 seed=1" in line and "queued" in line
                                              for line in screen_lines(app)), 10, "members")
            assert table._order[table._order.index(key) + 1:][:4] == [
                done.id, running.id, waiting.id, stopped.id]  # grid order, under the sweep
            # The sweep's line: enter opens its screen; s on a member line stops that member.
            table.select(key)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, SweepScreen), 10, "sweep")
    finally:
        worker.kill()


async def test_sweep_screen_grid_queue_and_member_actions(runs_dir, env_data, schedulers):
    sweep, worker, (done, running, waiting, stopped) = _sweep_with_states(runs_dir, env_data)
    app = BvaeApp(runs_dir, env_data)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            app.open_sweep(sweep.path)
            screen = await wait_for(pilot, lambda: isinstance(app.screen, SweepScreen)
                                    and app.screen.view and app.screen, 20, "the grid")
            grid = screen.view.grid
            assert (grid.row_axes, grid.col_axis) == (["beta"], "seed")
            text = await wait_for(pilot, lambda: (t := "\n".join(screen_lines(app)))
                                  and "waiting:" in t and t, 30, "the queue drawn")
            assert "seed=1" in text and "seed=2" in text and "beta=4" in text
            assert "done" in text and "33%" in text and "queued" in text  # states, progress
            assert "beta=1 seed=2 on cpu" in text  # the queue: where each member runs
            assert "waiting: beta=4 seed=1" in text
            await pilot.press("c")  # loss -> betavae: nobody scored yet, cells keep states
            assert screen.score_name == "betavae"
            # One member: the waiting one (row beta=4, column seed=1) leaves the queue...
            table = screen.query_one("DataTable")
            table.move_cursor(row=1, column=1)
            await pilot.pause()
            assert screen.selected_member().id == waiting.id
            await pilot.press("s")
            await wait_for(pilot, lambda: waiting.status().state == "stopped", 10, "unqueued")
            # ...and comes back; with no scheduler running, one is started for it.
            await pilot.press("r")
            await wait_for(pilot, lambda: waiting.status().state == "queued" and schedulers,
                           10, "requeued")
            assert schedulers == [sweep.id, sweep.id]  # at creation, and now
            # The whole sweep: stop takes every waiting member out of the queue.
            await pilot.press("S")
            await wait_for(pilot, lambda: waiting.status().state == "stopped", 10, "stop all")
            assert sweep.scheduler().stop_requested
            # v compares the members (the four of them, not the sweep's neighbours)
            await pilot.press("v")
            compare = await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen)
                                     and app.screen, 10, "the compare screen")
            assert sorted(r.id for r in compare.runs) == sorted(
                m.id for m in (done, running, waiting, stopped))
    finally:
        worker.kill()
