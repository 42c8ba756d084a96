"""Compare draws probe curves per group (issue 21): MIG and each factor's best share over
iterations, mean and band over seeds; runs without probes are left out (shown as such, never as
zeros); `bvae compare --plot` draws the probe panel and `--probe` picks the score."""

from __future__ import annotations

import math

import numpy as np
import pytest
from typer.testing import CliRunner

from bvae_tui.engine.analysis.compare import group_band, group_runs, probe_scores, without_probes
from bvae_tui.engine.analysis.compare_runs import RunReader, load_runs, probe_values
from bvae_tui.engine.runs.records import ProbeRow
from tests.compare_helpers import make_run, one_line_error, row

FACTORS = ["shape", "scale"]


def probe_row(iteration: int, mig: float, shape: float, scale: float) -> ProbeRow:
    """A probe where latent 0 carries ``shape`` of shape and latent 1 ``scale`` of scale."""
    return ProbeRow(iter=iteration, mig=mig, factors=FACTORS,
                    mi=[[shape, 0.05], [0.01, scale], [0.0, 0.0]], factor_entropy=[1.1, 1.8],
                    best_latent=[0, 1])


def write_probes(run, rows: list[ProbeRow], torn: str = "") -> None:
    run.probes_path.write_text("".join(r.to_line() for r in rows) + torn)


def mig_of(beta: float, seed: int, iteration: int) -> float:
    return round(0.001 * iteration / beta + 0.01 * seed, 6)


@pytest.fixture
def grid(runs_dir):
    """β=1 and β=4 with two seeds each, probed at 100, 200, 300; β=16 without probes."""
    runs = {}
    for beta, seeds in ((1.0, (1, 2)), (4.0, (1, 2)), (16.0, (1,))):
        for seed in seeds:
            rows = [row(i, 400.0 - i / 10, 5.0 + i / 100) for i in (100, 200, 300)]
            run = make_run(runs_dir, f"b{beta:g}-s{seed}", rows=rows, beta=beta, seed=seed)
            if beta != 16.0:
                write_probes(run, [probe_row(i, mig_of(beta, seed, i), 0.2 * i / 100, 0.1 * seed)
                                   for i in (100, 200, 300)], torn='{"iter": 400, "mig": 0.')
            runs[(beta, seed)] = run
    return runs


def test_probe_curves_per_group_mean_and_band_over_seeds(grid):
    data = load_runs(grid.values())
    assert probe_scores(data) == ["mig", "mi/shape", "mi/scale"]
    groups = group_runs(data, ("beta",))
    assert [g.label for g in groups] == ["β=1", "β=4", "β=16"]
    one = group_band(groups[0], "mig")
    assert one.xs.tolist() == [100, 200, 300]  # the torn line at 400 is not a probe
    expected = [(mig_of(1, 1, i) + mig_of(1, 2, i)) / 2 for i in (100, 200, 300)]
    np.testing.assert_allclose(one.mean, expected)
    np.testing.assert_allclose(one.lo, [mig_of(1, 1, i) for i in (100, 200, 300)])
    np.testing.assert_allclose(one.hi, [mig_of(1, 2, i) for i in (100, 200, 300)])
    assert one.n.tolist() == [2, 2, 2]
    four = group_band(groups[1], "mig")
    np.testing.assert_allclose(four.mean, [(mig_of(4, 1, i) + mig_of(4, 2, i)) / 2
                                           for i in (100, 200, 300)])
    # A factor's curve is its best latent's share; scale differs by seed, shape does not.
    np.testing.assert_allclose(group_band(groups[0], "mi/shape").mean, [0.2, 0.4, 0.6])
    np.testing.assert_allclose(group_band(groups[0], "mi/scale").mean, [0.15] * 3)
    # The group without probes: an empty band (no line), never a line of zeros.
    none = group_band(groups[2], "mig")
    assert none.xs.size == 0 and none.mean.size == 0
    assert without_probes(groups) == [groups[2]]
    # The metrics curves of that group are still there.
    assert group_band(groups[2], "loss").xs.tolist() == [100, 200, 300]


def test_a_group_partly_probed_counts_only_its_probed_runs(runs_dir):
    a = make_run(runs_dir, "a", beta=2.0, seed=1)
    b = make_run(runs_dir, "b", beta=2.0, seed=2)  # same setting, never probed
    write_probes(a, [probe_row(100, 0.3, 0.5, 0.5)])
    (group,) = group_runs(load_runs([a, b]), ("beta",))
    band = group_band(group, "mig")
    assert band.mean.tolist() == [0.3] and band.n.tolist() == [1]
    assert without_probes([group]) == []


def test_reader_follows_new_probes_and_a_resume_rewrite(runs_dir):
    run = make_run(runs_dir, "live", state="running")
    reader = RunReader(run)
    assert reader.poll() and not reader.snapshot.probed
    assert reader.snapshot.series("mig")[0].size == 0
    write_probes(run, [probe_row(100, 0.1, 0.2, 0.3)])
    assert reader.poll() and reader.snapshot.probe_iters.tolist() == [100]
    with open(run.probes_path, "a") as fh:
        fh.write(probe_row(200, 0.2, 0.2, 0.3).to_line())
    assert reader.poll() and reader.snapshot.probe_curves["mig"].tolist() == [0.1, 0.2]
    assert not reader.poll()  # nothing new
    run.truncate_probes(100)  # what a resume from a checkpoint at 100 does
    assert reader.poll() and reader.snapshot.probe_iters.tolist() == [100]


def test_damaged_probe_rows_give_nan_not_numbers():
    damaged = ProbeRow(iter=5, mig=None, factors=FACTORS, mi=[[0.5], [0.2]])
    values = probe_values(damaged)
    assert set(values) == {"mig", "mi/shape", "mi/scale"}
    assert all(math.isnan(v) for v in values.values())
    assert probe_values(probe_row(1, 0.25, 0.7, 0.4)) == {"mig": 0.25, "mi/shape": 0.7,
                                                          "mi/scale": 0.4}


def bvae(*args: str):
    from bvae_tui.cli.main import app

    return CliRunner().invoke(app, list(args))


def _probe_axes(fig):
    return [ax for ax in fig.axes if ax.get_title().endswith("(probes)")]


def test_plot_draws_the_probe_panel_per_group(grid, tmp_path):
    pytest.importorskip("matplotlib")
    from bvae_tui.engine.analysis.compare_plot import build_figure

    data = load_runs(grid.values())
    groups = group_runs(data, ("beta",))
    fig = build_figure(data, groups, ["kl"])
    (ax,) = _probe_axes(fig)
    assert ax.get_title() == "MIG (probes)"
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"β=1 (n=2)", "β=4 (n=2)"}  # no line at all for β=16
    np.testing.assert_allclose(lines["β=1 (n=2)"].get_ydata(), group_band(groups[0], "mig").mean)
    assert [t.get_text() for t in ax.texts] == ["no probes: β=16"]
    (shape,) = _probe_axes(build_figure(data, groups, ["kl"], probe="shape"))
    assert shape.get_title() == "shape (best MI/H) (probes)"
    np.testing.assert_allclose(shape.get_lines()[0].get_ydata(), [0.2, 0.4, 0.6])

    # Without any probed run: no probe panel.
    plain = [r for r in data if not r.probed]
    assert _probe_axes(build_figure(plain, group_runs(plain, ()), ["kl"])) == []

    out = tmp_path / "cmp.png"
    result = bvae("compare", *[r.id for r in grid.values()], "--plot", str(out), "--probe",
                  "scale")
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_probe_option_errors_are_one_line(grid, tmp_path):
    ids = [r.id for r in grid.values()]
    out = tmp_path / "cmp.png"
    one_line_error(bvae("compare", *ids, "--probe", "mig"), "--probe picks the probe panel of "
                   "--plot")
    pytest.importorskip("matplotlib")
    one_line_error(bvae("compare", *ids, "--plot", str(out), "--probe", "colour"),
                   "no run has a probed 'colour'", "mig, shape, scale")
    unprobed = grid[(16.0, 1)].id
    one_line_error(bvae("compare", unprobed, "--plot", str(out), "--probe", "mig"),
                   "none of these runs has probes", "--probe-every")
    assert not out.exists()
