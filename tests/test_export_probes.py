"""`bvae export csv|tensorboard` include the probes (issue 21): MIG and, per factor, the best
latent and the share of the factor it carries, at each probe's iteration."""

from __future__ import annotations

import csv
import math

import pytest

from bvae_tui.engine.runs.records import ProbeRow
from tests.compare_helpers import make_run, row
from tests.test_export_data import bvae

FACTORS = ["shape", "scale"]


def probe(iteration: int, mig: float, shape: float, scale: float) -> ProbeRow:
    """Latent 1 carries ``shape`` of shape, latent 0 ``scale`` of scale."""
    return ProbeRow(iter=iteration, time=1_700_000_000.0 + iteration, mig=mig, factors=FACTORS,
                    mi=[[0.05, scale], [shape, 0.1], [0.0, 0.0]], factor_entropy=[1.1, 1.8],
                    best_latent=[1, 0])


@pytest.fixture
def probed(runs_dir):
    a = make_run(runs_dir, "a", beta=1.0, rows=[row(i, 300.0 - i / 10, 8.0) for i in (100, 200)])
    # 150: a probe at a step with no metrics row; then a damaged row and a torn last line.
    rows = [probe(100, 0.1, 0.6, 0.3), probe(150, 0.2, 0.7, 0.35), probe(200, 0.3, 0.8, 0.4),
            ProbeRow(iter=250, mig=0.35, factors=FACTORS, mi=[[0.5], [0.1]])]
    a.probes_path.write_text("".join(r.to_line() for r in rows) + '{"iter": 300, "mig"')
    b = make_run(runs_dir, "b", beta=4.0, rows=[row(100, 320.0, 2.0)])  # never probed
    return a, b


def test_csv_has_the_probes_at_their_iterations(probed, tmp_path):
    a, b = probed
    target = tmp_path / "rows.csv"
    result = bvae("export", "csv", a.id, b.id, "-o", str(target))
    assert result.exit_code == 0, result.output
    with open(target, newline="") as fh:
        lines = list(csv.DictReader(fh))
    header = list(lines[0])
    assert header[-5:] == ["probe_mig", "probe_latent_shape", "probe_mi_shape",
                           "probe_latent_scale", "probe_mi_scale"]
    mine = [line for line in lines if line["run"] == a.id]
    assert [line["iter"] for line in mine] == ["100", "150", "200", "250"]
    first, between, last, damaged = mine
    assert float(first["loss"]) == 290.0 and float(first["probe_mig"]) == 0.1
    assert (first["probe_latent_shape"], float(first["probe_mi_shape"])) == ("1", 0.6)
    assert (first["probe_latent_scale"], float(first["probe_mi_scale"])) == ("0", 0.3)
    # A probe between two metrics rows has a line of its own: no made-up training figures.
    assert between["loss"] == between["kl"] == between["kl_z0"] == ""
    assert between["name"] == "a" and float(between["probe_mi_shape"]) == 0.7
    assert float(last["loss"]) == 280.0 and float(last["probe_mig"]) == 0.3
    # A damaged matrix: its MIG is kept, its factors' cells stay empty (not zeros).
    assert float(damaged["probe_mig"]) == 0.35 and damaged["probe_mi_shape"] == ""
    (other,) = [line for line in lines if line["run"] == b.id]
    assert other["probe_mig"] == other["probe_mi_shape"] == ""  # no probes: empty, not 0


def test_csv_without_any_probes_has_no_probe_columns(runs_dir, tmp_path):
    a = make_run(runs_dir, "a")
    target = tmp_path / "rows.csv"
    assert bvae("export", "csv", a.id, "-o", str(target)).exit_code == 0
    with open(target, newline="") as fh:
        header = next(csv.reader(fh))
    assert not any(name.startswith("probe_") for name in header)


def test_tensorboard_has_the_probes(probed, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    a, b = probed
    out = tmp_path / "tb"
    result = bvae("export", "tensorboard", a.id, b.id, "-o", str(out))
    assert result.exit_code == 0, result.output
    acc = EventAccumulator(str(out / a.id), size_guidance={"scalars": 0})
    acc.Reload()
    assert {"probe/mig", "probe/mi/shape", "probe/mi/scale", "probe/best_latent/shape",
            "probe/best_latent/scale"} <= set(acc.Tags()["scalars"])
    mig = acc.Scalars("probe/mig")
    assert [e.step for e in mig] == [100, 150, 200, 250]
    assert all(math.isclose(e.value, v, rel_tol=1e-6)
               for e, v in zip(mig, (0.1, 0.2, 0.3, 0.35), strict=True))
    assert [e.step for e in acc.Scalars("probe/mi/shape")] == [100, 150, 200]  # not the damaged
    assert [round(e.value, 6) for e in acc.Scalars("probe/mi/scale")] == [0.3, 0.35, 0.4]
    assert [e.value for e in acc.Scalars("probe/best_latent/shape")] == [1.0, 1.0, 1.0]
    assert mig[0].wall_time == 1_700_000_100.0
    acc_b = EventAccumulator(str(out / b.id))
    acc_b.Reload()
    assert not any(t.startswith("probe/") for t in acc_b.Tags()["scalars"])
