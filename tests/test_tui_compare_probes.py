"""The compare screen draws probe curves per group (issue 21): MIG by default, `p` cycles to each
factor's best share; groups without probes are named, not drawn; a new probe row shows live."""

from __future__ import annotations

import numpy as np

from bvae_tui.tui.app import BvaeApp
from bvae_tui.tui.screens.compare import CompareScreen
from bvae_tui.tui.widgets.curve_plot import CurvePlot
from tests.compare_helpers import make_run, row
from tests.test_compare_probes import mig_of, probe_row, write_probes
from tests.tui_helpers import screen_lines, wait_for

ITERS = (100, 200, 300)


def _runs(root):
    runs = {}
    for beta, seeds in ((1.0, (1, 2)), (4.0, (1, 2)), (16.0, (1,))):
        for seed in seeds:
            rows = [row(i, 400.0 - i / 10, 5.0 + i / 100) for i in ITERS]
            run = make_run(root, f"b{beta:g}-s{seed}", rows=rows, beta=beta, seed=seed,
                           state="running")
            if beta != 16.0:
                write_probes(run, [probe_row(i, mig_of(beta, seed, i), 0.2 * i / 100, 0.1 * seed)
                                   for i in ITERS])
            runs[(beta, seed)] = run
    return runs


async def _open(app, pilot, count: int) -> CompareScreen:
    await wait_for(pilot, lambda: len(app.screen.rows) == count, 30, "the runs")
    await pilot.press("c")
    await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.data,
                   30, "the compare screen's data")
    await pilot.pause()
    return app.screen


async def test_compare_draws_probe_curves_per_group(runs_dir):
    runs = _runs(runs_dir)
    app = BvaeApp(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        compare = await _open(app, pilot, 5)
        await wait_for(pilot, lambda: len(compare.data) == 5, 30, "all five runs")
        plot = compare.query_one("#cmp-plot-probe", CurvePlot)
        assert plot.display and compare.probe == "mig"
        assert plot.title == "MIG (probes) p  no probes: β=16"
        series = {s.label: s for s in plot._series}
        assert set(series) == {"β=1", "β=4"}  # β=16 has no line (not a line of zeros)
        np.testing.assert_allclose(series["β=1"].ys, [(mig_of(1, 1, i) + mig_of(1, 2, i)) / 2
                                                      for i in ITERS])
        np.testing.assert_allclose(series["β=4"].lo, [mig_of(4, 1, i) for i in ITERS])
        np.testing.assert_allclose(series["β=4"].hi, [mig_of(4, 2, i) for i in ITERS])
        lines = screen_lines(app)
        assert any(line.startswith("MIG (probes) p  no probes: β=16") for line in lines), lines

        await pilot.press("p")  # the next probed score: shape's best share
        assert compare.probe == "mi/shape"
        assert plot.title.startswith("shape (best MI/H) (probes) p")
        np.testing.assert_allclose({s.label: s for s in plot._series}["β=1"].ys, [0.2, 0.4, 0.6])
        await pilot.press("p", "p")  # scale, then back to MIG
        assert compare.probe == "mig"

        # A new probe row of a running run shows up live.
        with open(runs[(1.0, 1)].probes_path, "a") as fh:
            fh.write(probe_row(400, 0.9, 0.8, 0.1).to_line())
        await wait_for(pilot, lambda: {s.label: s for s in plot._series}["β=1"].xs[-1] == 400,
                       10, "the new probe")
        await pilot.press("escape")


async def test_no_probe_plot_without_probes(runs_dir):
    make_run(runs_dir, "a", beta=1.0)
    make_run(runs_dir, "b", beta=4.0)
    app = BvaeApp(runs_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        compare = await _open(app, pilot, 2)
        assert not compare.query_one("#cmp-plot-probe").display
        await pilot.press("p")
        await pilot.pause()
        assert compare.probe is None
        assert any("no run here has probes yet" in n.message for n in app._notifications)
        await pilot.press("escape")
