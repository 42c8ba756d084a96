"""The TUI at 80x24 and 100x32: nothing that tells runs apart is cut. Each test reads the
rendered screen (what a user at that size sees), not the widgets' data."""

from __future__ import annotations

import json
import time

import pytest

from bvae_tui.engine.runs.sweeps import control
from bvae_tui.tui.app import BvaeApp
from bvae_tui.tui.naming import differing_first, fit, fit_all
from bvae_tui.tui.widgets.runs_table import RunsTable, choose_columns
from tests.sweep_helpers import tiny_spec
from tests.tui_helpers import make_run, screen_lines, wait_for

SIZES = [(80, 24), (100, 32)]
LONG = "long beta=1 seed=1 iters="  # two runs whose names differ only at the end




def _scene(runs_dir, data_dir):
    """A 2x2 sweep (one member stopped at 915 of 3000) and two scored runs with long names."""
    sweep, _ = control.create(tiny_spec(3000, 10, beta="1,4", seed="1,2", device="cpu"),
                              runs_dir, data_dir)
    done, _, _, stopped = sweep.members()
    done.write_status(state="finished", iteration=3000, total=3000, started=time.time() - 60)
    stopped.write_status(state="stopped", iteration=915, total=3000, error="stopped by hand")
    runs = [make_run(runs_dir, data_dir, f"{LONG}{n}", "finished", beta=1.0, iterations=n)
            for n in (1000, 2000)]
    for run in runs:
        run.eval_path.write_text(json.dumps({"scores": {
            "betavae": 0.8, "factorvae": 0.7, "mig": 0.2, "dci": 0.3, "sap": 0.05,
            "modularity": 0.9, "explicitness": 0.85}}))
    return sweep, runs


def _text(app) -> str:
    return "\n".join(screen_lines(app))


# Naming helpers --------------------------------------------------------------------------------
def test_fit_keeps_the_part_that_differs():
    names = [f"{LONG}1000", f"{LONG}2000", "short"]
    for width in (12, 16, 20):
        cut = fit_all(names, width)
        assert all(len(c) <= width for c in cut)
        assert "1000" in cut[0] and "2000" in cut[1] and cut[2] == "short"
    assert fit_all(names, 40) == names  # what fits is left whole
    assert fit("abcdefghij", 5) == "abcd…"  # nothing to tell it from: the end goes
    assert fit(f"{LONG}1000", 18, [f"{LONG}2000"]) == "long be…iters=1000"


def test_differing_parts_come_first():
    labels = ["obj=H β=1 lr=0.0001 iters=1000", "obj=H β=1 lr=0.0001 iters=2000"]
    assert differing_first(labels) == ["iters=1000 obj=H β=1 lr=0.0001",
                                       "iters=2000 obj=H β=1 lr=0.0001"]
    assert differing_first(["β=4"]) == ["β=4"]


def test_columns_yield_by_priority():
    natural = {"name": 30, "state": 8, "iter": 14, "loss": 5, "kl": 4, "objective": 18,
               "dataset": 20, "scores": 30, "started": 5, "duration": 8, "note": 30}
    shown, name_w = choose_columns(78, natural)
    assert shown == ["name", "state", "iter", "objective"] and name_w == 30
    shown, name_w = choose_columns(50, natural)
    assert shown == ["name", "state", "iter"] and name_w >= 16
    shown, _ = choose_columns(300, natural)
    assert len(shown) == 11


# Runs table ---------------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
async def test_runs_table_with_an_unfolded_sweep_fits(runs_dir, env_data, schedulers, size):
    sweep, runs = _scene(runs_dir, env_data)
    app = BvaeApp(runs_dir, env_data)
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.sweeps and len(screen.rows) == 6, 20, "the runs")
        table = screen.query_one(RunsTable)
        table.select(f"sweep:{sweep.id}")
        await pilot.press("space")
        await wait_for(pilot, lambda: "beta=4 seed=2" in _text(app), 10, "the members")

        def names_apart() -> bool:  # the runs' names tell them apart (once redrawn)
            lines = _text(app).splitlines()
            return all(any(f"{n}  " in line and "finished" in line for line in lines)
                       for n in (1000, 2000))
        await wait_for(pilot, names_apart, 10, "both runs' names, whole at the end")
        text = _text(app)
        lines = text.splitlines()
        assert "sweep: beta x seed" in text  # the objective column whole, not cut
        assert "1/4 done" in text  # members done out of members
        assert "915/3000" in text  # how far the stopped member got
        header = next(line for line in lines if " name " in line)
        for word in ("state", "iteration", "objective"):
            assert f" {word} " in header + " ", header  # whole column titles
        assert "…" not in header


# Scores (p) ------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
async def test_scores_screen_names_and_every_metric_fit(runs_dir, env_data, schedulers, size):
    from textual.widgets import DataTable

    from bvae_tui.tui.screens.scores import ScoresScreen

    _scene(runs_dir, env_data)
    app = BvaeApp(runs_dir, env_data)
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.rows) == 6, 20, "the runs")
        await pilot.press("p")
        modal = await wait_for(pilot, lambda: isinstance(app.screen, ScoresScreen)
                               and app.screen, 10, "the scores")
        await pilot.pause(0.3)
        text = _text(app)
        rows = [line for line in text.splitlines() if "0.800" in line]
        assert len(rows) == 2  # the two runs, told apart by what differs in their names
        assert any("1000" in r for r in rows) and any("2000" in r for r in rows), text
        header = next(line for line in text.splitlines() if " run " in line)
        for label in ("BV", "FV", "MIG", "DCI", "SAP", "Mod", "Expl"):
            assert f" {label} " in header + " ", header  # every metric, no scrolling
        assert modal.query_one(DataTable).has_focus  # arrows scroll it


# Curves: the log axis --------------------------------------------------------------------------
async def test_curves_take_a_log_axis_past_a_decade_and_a_key_toggles_it():
    from textual.app import App, ComposeResult

    from bvae_tui.tui.widgets.curve_plot import CurvePlot, Series

    class One(App):
        def compose(self) -> ComposeResult:
            yield CurvePlot("loss", id="p")

    app = One()
    async with app.run_test(size=(60, 10)) as pilot:
        plot = app.query_one(CurvePlot)
        falling = [1326.0, 400.0, 200.0, 150.0, 116.0]  # a bit more than a decade
        plot.set_data(range(5), [Series("loss", falling, "cyan")])
        await pilot.pause()
        assert plot.is_log and "loss (log)" in screen_lines(app)[0]
        plot.set_data(range(5), [Series("loss", [10.0, 8.0, 6.0, 5.0, 4.0], "cyan")])
        assert not plot.is_log  # within a decade: linear
        plot.set_scale("log")
        assert plot.is_log
        plot.set_data(range(5), [Series("loss", falling, "cyan")])
        plot.set_scale("linear")
        await pilot.pause()
        assert not plot.is_log and "(log)" not in screen_lines(app)[0]


@pytest.mark.parametrize("size", SIZES)
async def test_monitor_header_keeps_the_run_id_and_l_cycles_the_axis(runs_dir, tmp_path,
                                                                      size):
    from bvae_tui.tui.screens.monitor import MonitorScreen
    from bvae_tui.tui.widgets.curve_plot import CurvePlot

    run = make_run(runs_dir, tmp_path, "dsprites-mini-H-beta-seed beta=1 seed=2", "finished",
                   rows=30)
    app = BvaeApp(runs_dir, tmp_path)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.screen.rows, 10, "the run")
        app.open_monitor(run.path)
        monitor = await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen)
                                 and app.screen.history.last and app.screen, 10, "monitor")
        await pilot.pause(0.3)
        header = screen_lines(app)[:3]
        assert run.id in header[2], header  # whole: a sweep's members differ at its end
        assert "seed=2" in header[0], header  # the name keeps its end too
        plots = list(monitor.query(CurvePlot))
        assert all(p.scale == "auto" for p in plots) and plots[0].is_log  # 100 -> 3.3
        await pilot.press("l")
        assert all(p.scale == "log" for p in plots)
        await pilot.press("l")
        assert all(p.scale == "linear" for p in plots) and not plots[0].is_log
        await pilot.press("l")
        assert all(p.scale == "auto" for p in plots)
        footer = await wait_for(pilot, lambda: "esc Runs" in (f := screen_lines(app)[-1])
                                and f, 10, "the footer")
        assert "q Quit" in footer, footer  # nothing cut


# Sweep screen --------------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
async def test_sweep_screen_cells_say_how_far_and_its_monitor_goes_back_to_it(
        runs_dir, env_data, schedulers, size):
    from bvae_tui.tui.screens.monitor import MonitorScreen
    from bvae_tui.tui.screens.sweep import SweepScreen

    sweep, _ = _scene(runs_dir, env_data)
    app = BvaeApp(runs_dir, env_data)
    async with app.run_test(size=size) as pilot:
        app.open_sweep(sweep.path)
        screen = await wait_for(pilot, lambda: isinstance(app.screen, SweepScreen)
                                and app.screen.view and app.screen, 20, "the grid")
        text = await wait_for(pilot, lambda: (t := _text(app)) and "stopped" in t and t, 10,
                              "the cells")
        assert "stopped 915/3000" in text and "done" in text
        footer = await wait_for(pilot, lambda: "esc Back" in (f := screen_lines(app)[-1])
                                and f, 10, "the footer")
        assert "v Compare" in footer and "q Quit" in footer, footer  # nothing cut
        screen.query_one("DataTable").move_cursor(row=1, column=2)  # beta=4 seed=2
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), 10, "monitor")
        await pilot.pause(0.3)
        await wait_for(pilot, lambda: "esc Sweep" in screen_lines(app)[-1], 10, "esc Sweep")
        assert "back to the sweep" in app.screen.HELP
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, 10, "back on the sweep")


# Compare -------------------------------------------------------------------------------------
async def test_compare_legend_shows_what_differs_first():
    from textual.app import App, ComposeResult

    from bvae_tui.engine.analysis.compare import Group
    from bvae_tui.tui.widgets.compare_view import Legend

    class One(App):
        def compose(self) -> ComposeResult:
            yield Legend(id="legend")

    app = One()
    async with app.run_test(size=(24, 6)) as pilot:  # the legend's width at 80 columns
        legend = app.query_one(Legend)
        legend.set_groups([Group(key=(i,), label=f"obj=H β=1 lr=0.0001 iters={n}",
                                 runs=("r",) * k, colour=i)
                           for i, (n, k) in enumerate(((1000, 3), (2000, 2)))], "by obj")
        await pilot.pause()
        lines = screen_lines(app)
        assert any("iters=1000" in line and "×3" in line for line in lines), lines
        assert any("iters=2000" in line and "×2" in line for line in lines), lines


async def test_a_filter_matching_nothing_says_so(runs_dir, env_data, schedulers):
    _scene(runs_dir, env_data)
    app = BvaeApp(runs_dir, env_data)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.rows) == 6, 20, "the runs")
        await pilot.press("slash", *"nosuchrun", "enter")
        await wait_for(pilot, lambda: "no runs match" in _text(app), 10, "the message")
        assert "nosuchrun" in _text(app)
