"""builtin:locatello-study (issue 22): the study as one spec of data sets x objectives x each
objective's grid x seeds; `bvae sweep --dry-run` prints the member count and the time estimated
from this machine's saved `bvae bench` figures (or says there are none and how to make them),
creating nothing; without --dry-run each objective's grid becomes its own sweep."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from bvae_tui.cli.main import app
from bvae_tui.engine.bench import figures
from bvae_tui.engine.runs.sweeps.spec import load_spec, spec_from_dict
from bvae_tui.engine.runs.sweeps.store import list_sweeps

STUDY = "builtin:locatello-study"
STUDY_DATASETS = ["dsprites", "color-dsprites", "noisy-dsprites", "scream-dsprites",
                  "smallnorb", "cars3d", "shapes3d"]


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def bench_cache(tmp_path, monkeypatch):
    """A private cache dir: no bench figures until a test saves some."""
    monkeypatch.setenv("BVAE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_study_spec_is_disentanglement_libs_grid():
    study = load_spec(STUDY)
    parts = {p.part: p for p in study.parts}
    assert list(parts) == ["beta-vae", "annealed-vae", "factor-vae", "dip-vae-i", "dip-vae-ii",
                           "beta-tc-vae"]
    assert study.count() == 7 * 6 * 6 * 50
    for part in parts.values():
        assert part.values["dataset"] == STUDY_DATASETS and part.values["seed"] == list(range(50))
        assert part.axes[0] == "dataset" and part.axes[-1] == "seed"  # seeds vary fastest
        assert part.fixed["iterations"] == 300_000 and part.fixed["batch_size"] == 64
        assert (part.fixed["arch"], part.fixed["recon"], part.fixed["z_dim"]) == \
            ("H", "bernoulli", 10)
    grid = {name: (p.fixed["objective"], p.axes[1], p.values[p.axes[1]])
            for name, p in parts.items()}
    assert grid == {
        "beta-vae": ("H", "beta", [1.0, 2.0, 4.0, 6.0, 8.0, 16.0]),
        "annealed-vae": ("B", "c_max", [5.0, 10.0, 25.0, 50.0, 75.0, 100.0]),
        "factor-vae": ("factor", "gamma_tc", [10.0, 20.0, 30.0, 40.0, 50.0, 100.0]),
        "dip-vae-i": ("dip-i", "lambda_od", [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]),
        "dip-vae-ii": ("dip-ii", "lambda_od", [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]),
        "beta-tc-vae": ("tcvae", "beta", [1.0, 2.0, 4.0, 6.0, 8.0, 10.0]),
    }
    assert parts["annealed-vae"].fixed["gamma"] == 1000.0
    assert parts["beta-tc-vae"].fixed["tc_estimator"] == "mws"


def test_dry_run_counts_and_says_there_is_no_bench_figure(runs_dir, env_data, schedulers,
                                                          bench_cache):
    res = _cli("sweep", "--spec", STUDY, "--dataset", "dsprites,dsprites-mini", "--seed",
               "1..5", "--dry-run")
    assert res.exit_code == 0, res.output
    assert "360 members in 6 sweeps; nothing was created" in res.output
    assert "locatello-study-dip-vae-ii" in res.output and "(dataset x lambda_od x seed)" in \
        res.output
    assert "no bench figure for cpu" in res.output and "bvae bench --device cpu" in res.output
    assert not list(runs_dir.iterdir())  # nothing created
    assert not bench_cache.exists()


def test_dry_run_estimates_from_saved_bench_figures(runs_dir, env_data, schedulers,
                                                    bench_cache):
    saved = figures.save_record({"device": "cpu", "device_name": "x", "quick": False,
                                 "figures": [{"key": "train.H.b64", "fast": 1000.0},
                                             {"key": "train.H.b256", "fast": 4000.0},
                                             {"key": "draw.b64", "fast": 9.0}]})
    assert saved == bench_cache / figures.BENCH_FILE
    assert figures.save_record({"device": "cpu", "quick": True, "figures": [
        {"key": "train.H.b64", "fast": 1.0}]}) is None  # --quick figures are not speed
    res = _cli("sweep", "--spec", STUDY, "--dataset", "dsprites,dsprites-mini", "--seed",
               "1..5", "--dry-run", "--json")
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    assert plan["count"] == 360 and len(plan["parts"]) == 6 and plan["device"] == "cpu"
    # 360 members x 300,000 steps x 64 images / 1,000 img/s (arch H, batch 64: the nearest)
    assert plan["train_seconds"] == pytest.approx(360 * 300_000 * 64 / 1000)
    assert plan["at_once"] == 1 and plan["no_estimate"] is None
    res = _cli("sweep", "--spec", STUDY, "--dataset", "dsprites-mini", "--seed", "1",
               "--device", "cpu", "--slots", "2", "--dry-run")
    assert res.exit_code == 0, res.output
    # 36 members x 300,000 x 64 / 1,000 = 8 days one after another; 4 days two at once
    assert "estimated training time: 8.0 days one member after another on cpu" in res.output
    assert "4.0 days with 2 at once" in res.output
    assert not list(runs_dir.iterdir())


def test_dry_run_checks_the_data_set_names_through_the_registry(runs_dir, env_data,
                                                                schedulers, bench_cache):
    res = _cli("sweep", "--spec", STUDY, "--dataset", "dsprites,nope", "--seed", "1",
               "--dry-run")
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown dataset 'nope'")
    assert not list(runs_dir.iterdir())


def test_without_dry_run_each_objective_becomes_a_sweep(runs_dir, env_data, schedulers):
    res = _cli("sweep", "--spec", STUDY, "--dataset", "dsprites-mini", "--seed", "1,2",
               "--iterations", "20", "--batch-size", "8", "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert "6 sweeps, 72 members" in res.output
    sweeps = {s.name: s for s in list_sweeps(runs_dir)}
    assert set(sweeps) == {f"locatello-study-{p}" for p in (
        "beta-vae", "annealed-vae", "factor-vae", "dip-vae-i", "dip-vae-ii", "beta-tc-vae")}
    assert sorted(schedulers) == sorted(s.id for s in sweeps.values())
    dip = sweeps["locatello-study-dip-vae-i"]
    configs = [run.config for run in dip.members()]
    assert len(configs) == 12 and {c.objective for c in configs} == {"dip-i"}
    assert sorted({c.dip_lambda_d for c in configs}) == [10.0, 20.0, 50.0, 100.0, 200.0, 500.0]
    assert all(c.iterations == 20 and c.eval_at_end for c in configs)
    ii = [run.config for run in sweeps["locatello-study-dip-vae-ii"].members()]
    assert all(c.dip_lambda_d == c.lambda_od for c in ii)


def test_the_whole_study_needs_yes(runs_dir, env_data, schedulers):
    res = _cli("sweep", "--spec", STUDY)  # every part is 2,100; the study 12,600
    assert res.exit_code == 1
    assert res.output.strip() == ("error: the study has 12,600 members in 6 sweeps, more than "
                                  "10,000; pass --yes to create them all, or narrow it "
                                  "(--dataset, --seed)")
    assert not list(runs_dir.iterdir())


def test_a_part_needs_a_name_and_parts_may_not_repeat_one():
    from bvae_tui.engine.errors import ConfigError

    with pytest.raises(ConfigError, match="needs a name"):
        spec_from_dict({"part": [{"sweep": {"beta": [1, 2]}}]})
    with pytest.raises(ConfigError, match="two parts are named 'a'"):
        spec_from_dict({"part": [{"name": "a"}, {"name": "a"}]})
    two = spec_from_dict({"name": "s", "sweep": {"seed": [1, 2]},
                          "part": [{"name": "a", "sweep": {"beta": [1, 2, 3]}},
                                   {"name": "b", "fixed": {"objective": "B"}}]})
    assert two.count() == 6 + 2 and [s.name for s in two.sweeps()] == ["s-a", "s-b"]


def test_specs_lists_the_study():
    res = _cli("sweep", "specs", "--json")
    assert res.exit_code == 0
    listed = {s["name"]: s for s in json.loads(res.output)}
    assert listed["locatello-study"]["members"] == 12_600


def test_bvae_bench_saves_the_figures_the_dry_run_reads(runs_dir, env_data, schedulers,
                                                        bench_cache, monkeypatch):
    from bvae_tui.engine.bench import suite

    record = {"device": "cpu", "device_name": "test cpu", "quick": False, "figures": [
        {"key": "train.H.b64", "fast": 2000.0}, {"key": "train.B.b64", "fast": 1000.0}]}
    monkeypatch.setattr(suite, "run_bench", lambda *a, **k: record)
    res = CliRunner().invoke(app, ["bench", "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads((bench_cache / figures.BENCH_FILE).read_text())  # saved, keyed by CPU
    # A plain sweep too: 2 betas x 3 seeds of 1,000 steps at batch 64 on arch H (2,000 img/s)
    # and, with objective B's arch B (1,000 img/s), twice as long per member.
    res = _cli("sweep", "--dataset", "dsprites-mini", "--beta", "1,4", "--seed", "1..3",
               "--iterations", "1000", "--arch", "H", "--device", "cpu", "--dry-run", "--json")
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    assert plan["count"] == 6 and plan["train_seconds"] == pytest.approx(6 * 1000 * 64 / 2000)
    res = _cli("sweep", "--dataset", "dsprites-mini", "--objective", "B", "--c-max", "5,10",
               "--iterations", "1000", "--device", "cpu", "--dry-run")
    assert res.exit_code == 0, res.output
    assert "2 members; nothing was created" in res.output and " in 1 sweeps" not in res.output
    assert "estimated training time: 2 min one member after another on cpu" in res.output
    assert not list(runs_dir.iterdir())


def test_dry_run_scales_other_image_sizes_by_their_pixels(runs_dir, tmp_path, schedulers,
                                                          bench_cache):
    from tests.folder_helpers import make_folder

    figures.save_record({"device": "cpu", "figures": [{"key": "train.H.b64", "fast": 1000.0}]})
    folder = tmp_path / "renders"
    make_folder(folder, ([0, 1], [0, 1]))
    common = ["sweep", "--dataset", f"folder:{folder}", "--beta", "1,4", "--iterations", "1000",
              "--arch", "H", "--device", "cpu", "--data-dir", str(tmp_path / "data"),
              "--dry-run", "--json"]
    at_64 = json.loads(_cli(*common).stdout)
    res = _cli(*common, "--image-size", "128")
    assert res.exit_code == 0, res.output
    at_128 = json.loads(res.stdout)
    assert at_64["train_seconds"] == pytest.approx(2 * 1000 * 64 / 1000)
    assert at_128["train_seconds"] == pytest.approx(4 * at_64["train_seconds"])
    assert any("by their pixel count" in n for n in at_128["notes"])
    assert not (tmp_path / "data").exists() and not list(runs_dir.iterdir())


def test_a_sweep_over_data_sets_is_not_named_after_dsprites():
    """With the data set an axis there is no one data set to start the name from: a sweep over
    color- and noisy-dSprites was called 'dsprites-H-dataset-beta'."""
    from bvae_tui.engine.runs.sweeps.control import default_name

    over = spec_from_dict({"sweep": {"dataset": ["color-dsprites-mini", "noisy-dsprites-mini"],
                                     "beta": [1, 4]}})
    assert default_name(over) == "H-dataset-beta"
    one = spec_from_dict({"fixed": {"dataset": "smallnorb"}, "sweep": {"beta": [1, 4]}})
    assert default_name(one) == "smallnorb-H-beta"
