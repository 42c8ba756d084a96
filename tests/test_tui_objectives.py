"""The monitor shows each objective's own terms, and warns as worker.log does when an estimate
goes bad; the form shows only the chosen objective's fields and spells its command."""

from __future__ import annotations

import dataclasses

from bvae_tui.engine.config import schema
from bvae_tui.tui.app import BvaeApp
from bvae_tui.tui.run_data import MetricsHistory
from bvae_tui.tui.screens.monitor import MonitorScreen
from bvae_tui.tui.screens.new_run import NewRunScreen, command_line
from bvae_tui.tui.widgets.curve_plot import CurvePlot
from tests.tui_helpers import make_run, metrics_row, screen_lines, wait_for


def _rows(run, count, **terms):
    with open(run.metrics_path, "w") as fh:
        for i in range(1, count + 1):
            row = dataclasses.replace(metrics_row(i * 100), **terms)
            fh.write(row.to_line())


async def _monitor(app, pilot, run) -> MonitorScreen:
    app.open_monitor(run.path)
    await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen), 5, "monitor")
    mon = app.screen
    await wait_for(pilot, lambda: mon.history.rows_seen, 5, "metrics")
    await pilot.pause()
    return mon


async def test_monitor_plots_the_objectives_terms_and_warns(runs_dir, tmp_path):
    factor = make_run(runs_dir, tmp_path, "fv", "finished", objective="factor", gamma_tc=40.0,
                      batch_size=8)
    _rows(factor, 12, tc=-0.25, disc_acc=1.0)  # 1,200 iterations of a won discriminator
    tcvae = make_run(runs_dir, tmp_path, "tc", "finished", objective="tcvae", beta=6.0)
    _rows(tcvae, 3, mi=1.5, tc=0.5, dw_kl=2.0)
    plain = make_run(runs_dir, tmp_path, "h", "finished")
    app = BvaeApp(runs_dir)
    async with app.run_test(size=(100, 40)) as pilot:
        mon = await _monitor(app, pilot, factor)
        plot = mon.query_one("#plot-terms", CurvePlot)
        assert plot.display and plot.title == "TC · D acc" and plot._xs.size == 12
        assert [s.label for s in plot._series] == ["TC", "D acc"]
        assert [w.kind for w in mon.warnings] == ["negative-tc", "disc-saturated"]
        assert mon.query_one("#mon-warnings").display
        screen = " ".join(" ".join(screen_lines(app)).split())
        assert "TC · D acc TC -0.25 D acc 1.00" in screen  # the latest values
        assert "⚠ discriminator right 100% of the time for 1,200 iterations" in screen
        header = str(mon.query_one("#mon-header").render())
        assert "⚠ TC<0 · D saturated" in header and "factor γ40" in header
        app.pop_screen()

        mon = await _monitor(app, pilot, tcvae)
        assert mon.query_one("#plot-terms", CurvePlot).title == "MI · TC · dim-KL"
        assert "MI 1.50 TC 0.50 dim-KL 2.00" in " ".join(" ".join(screen_lines(app)).split())
        assert mon.warnings == [] and not mon.query_one("#mon-warnings").display
        assert "⚠" not in str(mon.query_one("#mon-header").render())
        app.pop_screen()

        mon = await _monitor(app, pilot, plain)
        assert not mon.query_one("#plot-terms").display
        assert not mon.query_one("#mon-warnings").display


def test_history_keeps_every_term_through_decimation():
    history = MetricsHistory(max_points=4)
    for i in range(1, 8):
        history.extend([dataclasses.replace(metrics_row(i), tc=float(i), disc_acc=0.5)])
    assert len(history.terms["tc"]) == len(history.iters) <= 4
    assert history.terms["tc"][-1] == 7.0 and history.snapshot().terms == history.terms
    assert all(v != v for v in history.terms["mi"])  # NaN: not logged by this objective


async def test_form_shows_the_chosen_objectives_fields(runs_dir, env_data):
    app = BvaeApp(runs_dir, env_data)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen), 5, "the form")
        form = app.screen

        def shown() -> set[str]:
            return {f.name for f in schema() if form.query_one(f"#row-{f.name}").display}

        form.set_field("objective", "factor")
        await pilot.pause()
        form.revalidate()
        assert {"gamma_tc", "disc_lr"} <= shown()
        assert not shown() & {"beta", "gamma", "alpha", "lambda_od", "lambda_d"}
        form.set_field("objective", "dip-i")
        form.set_field("lambda_od", "2")
        await pilot.pause()
        assert form.revalidate(), form.errors
        assert {"lambda_od", "lambda_d"} <= shown() and "gamma_tc" not in shown()
        cfg = form.config()
        assert cfg.lambda_d is None and cfg.dip_lambda_d == 20.0
        assert "--objective dip-i --lambda-od 2" in form.command()
        form.set_field("lambda_d", "-1")
        await pilot.pause()
        assert not form.revalidate() and "--lambda-d must be at least 0" in form.errors["lambda_d"]


def test_the_forms_command_leaves_out_fields_the_objective_does_not_use():
    fields = schema()
    values = {f.name: f.default for f in fields} | {"objective": "H", "gamma_tc": 10.0,
                                                   "beta": 2.0}
    line = command_line(fields, values, None, None)
    assert "--beta 2" in line and "--gamma-tc" not in line
