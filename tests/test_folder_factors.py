"""folder:PATH with a factors.csv (issue 22): ground truth from the csv, its bad input as one-line
errors, an incomplete grid as a stated warning with BetaVAE and FactorVAE drawing only existing
combinations, the cache rebuilt when the csv changes; and training with probes, every metric, the
baselines and the explore view's factor picker on it."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from bvae_tui.datasets import cache
from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.loader import cache_dir_of, check_available, folder_changed
from bvae_tui.datasets.prepare import open_dataset, prepare
from bvae_tui.datasets.registry import get_spec
from bvae_tui.engine.analysis import metrics as M
from bvae_tui.engine.analysis.metrics.ground_truth import GroundTruth
from bvae_tui.engine.errors import ConfigError
from tests.folder_helpers import colour_of, make_folder
from tests.metric_params import tiny_metric_params

LEVELS = ([0, 1], [0, 15, 30])  # a: 2 classes; b: 3 classes, written as 0/15/30

TINY = tiny_metric_params(8, 60, 30, 200, 10, variance=100)


def _pixel(ds, index: int) -> tuple[int, ...]:
    return tuple(int(v) for v in ds.images_at([index])[0][:, 32, 32])


def test_factors_csv_gives_ground_truth_looked_up_by_classes(tmp_path):
    folder = tmp_path / "renders"
    files = make_folder(folder, LEVELS)
    spec = get_spec(f"folder:{folder}")
    assert spec.has_factors and spec.factor_names == ("a", "b")  # from the header alone
    ds = prepare(f"folder:{folder}", tmp_path / "data")
    assert ds.factor_names == ("a", "b") and ds.factor_sizes == (2, 3) and ds.n == 6
    assert ds.complete_grid and ds.meta["warnings"] == []
    assert ds.meta["factor_values"] == [[0, 1], [0, 15, 30]]
    for combo in files:
        cls = [LEVELS[0].index(combo[0]), LEVELS[1].index(combo[1])]
        row = int(ds.index_of(np.array([cls]))[0])
        assert ds.classes[row].tolist() == cls  # the class is the level's rank ...
        assert ds.values[row].tolist() == list(combo)  # ... the value what the csv wrote
        assert _pixel(ds, row) == colour_of(combo)  # and the row is that file's image
    # Every sampled batch maps back to images with the classes asked for.
    gt = GroundTruth(ds)
    idx, factors = gt.sample_points(50, np.random.RandomState(0))
    assert np.array_equal(np.asarray(ds.classes)[idx], factors)


@pytest.mark.parametrize("rows, extra, fragment", [
    (None, {"extra_images": ["stray.png"]}, "1 image(s) have no row, e.g. stray.png"),
    (None, {"extra_rows": ["ghost.png,1,0"]},
     "1 row(s) name no image in the folder, e.g. ghost.png (line 8)"),
    (["img_000.png,0,x"], {}, "line 2: b is 'x', not a whole number"),
    (["img_000.png,0,1.5"], {}, "not a whole number"),
    (["img_000.png,0"], {}, "line 2: 2 cells, the header has 3"),
    (["img_000.png,0,0", "img_000.png,1,0"], {}, "img_000.png has a row already (line 2)"),
])
def test_bad_factors_csv_is_a_one_line_error_before_any_cache(tmp_path, rows, extra, fragment):
    folder = tmp_path / "renders"
    make_folder(folder, LEVELS, csv_rows=rows, **extra)
    name = f"folder:{folder}"
    for attempt in (lambda: check_available(name, tmp_path / "data"),
                    lambda: prepare(name, tmp_path / "data")):
        with pytest.raises(DataError, match=fragment.replace("(", r"\(").replace(")", r"\)")) \
                as info:
            attempt()
        assert "\n" not in str(info.value)
    assert cache.read_meta(cache_dir_of(get_spec(name), tmp_path / "data")) is None


def test_an_image_that_does_not_decode_loses_its_row_and_its_level(tmp_path):
    folder = tmp_path / "renders"
    make_folder(folder, LEVELS, extra_rows=["bad.png,2,0"])  # a = 2 only on the broken one
    (folder / "bad.png").write_bytes(b"not a png")
    ds = prepare(f"folder:{folder}", tmp_path / "data")
    assert ds.meta["skipped"] == 1 and ds.n == 6
    assert ds.factor_sizes == (2, 3) and ds.meta["factor_values"][0] == [0, 1]
    assert ds.complete_grid  # the level no image has left is not a class
    for row in range(ds.n):
        a, b = (int(v) for v in ds.values[row])
        assert _pixel(ds, row) == colour_of((a, b))  # rows still follow their images


def test_two_images_with_the_same_classes_are_refused(tmp_path):
    folder = tmp_path / "renders"
    make_folder(folder, ([0], [0, 1]), csv_rows=["img_000.png,0,1", "img_001.png,0,1"])
    with pytest.raises(DataError, match="have the same classes of every factor"):
        prepare(f"folder:{folder}", tmp_path / "data")


def test_a_bad_header_is_a_one_line_error(tmp_path):
    folder = tmp_path / "renders"
    make_folder(folder, LEVELS, names=("a", "A"))
    with pytest.raises(DataError, match="factor 'A' is named twice"):
        get_spec(f"folder:{folder}")


def test_a_factors_csv_that_is_not_a_regular_file_is_refused_not_read(tmp_path):
    import os

    folder = tmp_path / "renders"
    make_folder(folder, LEVELS)
    (folder / "factors.csv").unlink()
    os.mkfifo(folder / "factors.csv")  # opening it blocking would hang the listing
    with pytest.raises(DataError, match="factors.csv is not a regular file"):
        get_spec(f"folder:{folder}")


def test_cli_prepare_names_the_factors_and_warns_of_an_incomplete_grid(tmp_path):
    from bvae_tui.cli.main import app

    folder = tmp_path / "renders"
    make_folder(folder, ([0, 1, 2], [0, 1, 2]), drop=[(0, 0), (2, 1)])
    res = CliRunner().invoke(app, ["data", "prepare", f"folder:{folder}", "--data-dir",
                                   str(tmp_path / "data"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "factors from factors.csv: a 3, b 3" in res.output
    assert "warning: the factor grid of" in res.output and "7 of its 9 combinations" in \
        res.output.replace("\n", " ")
    bad = tmp_path / "bad"
    make_folder(bad, LEVELS, csv_rows=["img_000.png,0,zero"])
    res = CliRunner().invoke(app, ["data", "prepare", f"folder:{bad}", "--data-dir",
                                   str(tmp_path / "data")])
    assert res.exit_code != 0 and "Traceback" not in res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "not a whole number" in lines[0], res.output


def test_incomplete_grid_draws_only_existing_combinations(tmp_path):
    folder = tmp_path / "renders"
    missing = [(0, 0), (1, 15), (2, 30), (3, 0)]
    make_folder(folder, ([0, 1, 2, 3], [0, 15, 30, 45]), drop=missing)
    ds = prepare(f"folder:{folder}", tmp_path / "data")
    assert not ds.complete_grid and ds.n == 12 and ds.factor_sizes == (4, 4)
    assert "12 of its 16 combinations" in ds.meta["warnings"][0]
    with pytest.raises(DataError, match="no image has the factor classes"):
        ds.index_of(np.array([[0, 0]]))  # (0, 0) was dropped
    gt = GroundTruth(ds)
    idx, factors = gt.sample_points(200, np.random.RandomState(1))
    assert np.array_equal(np.asarray(ds.classes)[idx], factors)
    # BetaVAE and FactorVAE: every image of every batch exists, and the result says so.
    from bvae_tui.engine.analysis.metrics.betavae import plan_beta_vae
    from bvae_tui.engine.analysis.metrics.factorvae import plan_factor_vae

    for pool in (0, 5):  # --exact (the whole dataset) and a pool smaller than it
        bv = plan_beta_vae(gt, seed=0, batch_size=8, num_train=40, num_eval=20, pool=pool)
        classes = np.asarray(ds.classes)
        agree = classes[bv.train_a][..., :] == classes[bv.train_b]
        label_agrees = np.take_along_axis(agree, bv.train_labels[:, None, None].repeat(
            agree.shape[1], axis=1), axis=2)
        assert label_agrees.all()  # the two batches share the label factor's class
        fv = plan_factor_vae(gt, seed=0, batch_size=8, num_train=40, num_eval=20,
                             num_variance_estimate=50, pool=pool)
        held = np.take_along_axis(classes[fv.train_idx], fv.train_labels[:, None, None].repeat(
            fv.train_idx.shape[1], axis=1), axis=2)[..., 0]
        assert (held == held[:, :1]).all()  # one class of the label factor per batch
    from bvae_tui.engine.analysis.baselines import ground_truth_table

    result = M.evaluate_representation(ds, lambda needed: ground_truth_table(ds),
                                       ["betavae", "factorvae", "mig"],
                                       {m: TINY[m] for m in ("betavae", "factorvae", "mig")}, 0)
    for name in ("betavae", "factorvae"):
        assert "existing combinations only" in result["details"][name]["sampling"]
    assert "sampling" not in result["details"]["mig"]
    assert result["scores"]["factorvae"] >= 0.9  # the factors themselves (ties aside)


def test_changing_factors_csv_rebuilds_the_cache(tmp_path):
    folder = tmp_path / "renders"
    files = make_folder(folder, LEVELS)
    data = tmp_path / "data"
    name = f"folder:{folder}"
    first = prepare(name, data)
    assert first.meta["factor_values"][1] == [0, 15, 30]
    rows = [f"{n},{a},{b // 15}" for (a, b), n in files.items()]  # b renumbered 0/1/2
    (folder / "factors.csv").write_text("file,a,b\n" + "\n".join(rows) + "\n")
    assert folder_changed(get_spec(name), first.meta)
    again = open_dataset(name, data)
    assert again.meta["factor_values"][1] == [0, 1, 2]
    (folder / "factors.csv").unlink()  # no factors any more: a plain image folder again
    plain = open_dataset(name, data)
    assert plain.factor_sizes == () and not get_spec(name).has_factors


def test_folder_without_factors_keeps_its_fingerprint(tmp_path):
    from bvae_tui.datasets.images import folder_fingerprint
    from tests.folder_helpers import write_png

    folder = tmp_path / "photos"
    write_png(folder / "x.png", (1, 2, 3))
    before = folder_fingerprint(folder)
    (folder / "notes.txt").write_text("not an image")
    assert folder_fingerprint(folder) == before  # old caches of plain folders stay valid
    (folder / "factors.csv").write_text("file,a\nx.png,0\n")
    assert folder_fingerprint(folder) != before


@pytest.mark.usefixtures("one_thread")
def test_train_with_probes_then_every_metric_and_baseline(runs_dir, tmp_path, monkeypatch,
                                                         capsys):
    from bvae_tui.engine.analysis.evaluate import evaluate_baseline, evaluate_run
    from bvae_tui.engine.config import make_config
    from bvae_tui.engine.runs.store import create_run
    from bvae_tui.engine.train import probes
    from bvae_tui.engine.train.trainer import train

    monkeypatch.setattr(probes, "PROBE_POINTS", 64)
    folder = tmp_path / "renders"
    make_folder(folder, ([0, 1, 2], [0, 15, 30]), drop=[(1, 15)])  # incomplete: 8 images
    data = tmp_path / "data"
    cfg = make_config(dataset=f"folder:{folder}", device="cpu", z_dim=3, batch_size=4,
                      iterations=20, log_every=10, checkpoint_every=10, preview_every=0,
                      probe_every=10, seed=1)
    run = create_run(runs_dir, cfg, data, name="ff")
    assert train(run) == "finished"
    rows = run.probes()
    assert [r.iter for r in rows] == [10, 20] and rows[0].factors == ["a", "b"]
    assert "warning: the factor grid of" in capsys.readouterr().err  # worker.log when detached
    result = evaluate_run(run, params=TINY, seed=0)
    assert set(result["scores"]) == set(M.METRICS)
    assert all(0.0 <= v <= 1.0 for v in result["scores"].values())
    assert "existing combinations" in result["details"]["betavae"]["sampling"]
    gt = evaluate_baseline("ground-truth", f"folder:{folder}", data_dir=data, params=TINY,
                           metrics="factorvae,mig")
    assert gt["scores"]["factorvae"] >= 0.9  # the factors themselves (ties aside)
    pca = evaluate_baseline("pca", f"folder:{folder}", data_dir=data, params=TINY,
                            metrics="mig", device="cpu")
    assert 0.0 <= pca["scores"]["mig"] <= 1.0


def test_explore_index_for_takes_the_nearest_existing_image(tmp_path):
    from bvae_tui.engine.analysis.explore import Explorer

    folder = tmp_path / "renders"
    make_folder(folder, ([0, 1, 2], [0, 15, 30]), drop=[(1, 15)])
    ds = prepare(f"folder:{folder}", tmp_path / "data")
    explorer = Explorer.__new__(Explorer)  # only its factor lookups: no model needed
    explorer.dataset = ds
    explorer.need_dataset = lambda: ds  # type: ignore[method-assign]
    row = explorer.index_for({0: 1, 1: 2}, [0, 0])
    assert ds.classes[row].tolist() == [1, 2]
    near = explorer.index_for({0: 1}, [0, 1])  # (1, 1) has no image: a = 1 is kept
    assert ds.classes[near].tolist()[0] == 1
    with pytest.raises(DataError, match="no image has the factor classes"):
        explorer.index_for({0: 1, 1: 1}, [0, 0])


def test_data_list_survives_a_prepared_folder_whose_factors_csv_broke(tmp_path):
    """One folder's header going bad after it was prepared must not take the whole listing down:
    its row says what is wrong, the other data sets are still listed."""
    from bvae_tui.cli.main import app

    folder = tmp_path / "renders"
    make_folder(folder, LEVELS)
    data = str(tmp_path / "data")
    prepare(f"folder:{folder}", data)
    (folder / "factors.csv").write_text("file\n")  # the header lost its factor columns
    res = CliRunner().invoke(app, ["data", "list", "--data-dir", data, "--json"])
    assert res.exit_code == 0, res.output
    import json

    rows = {r["name"]: r for r in json.loads(res.output)}
    assert "dsprites" in rows
    broken = rows[f"folder:{folder.resolve()}"]
    assert not broken["prepared"] and "the header needs the file name column" in broken["problem"]
    res = CliRunner().invoke(app, ["data", "list", "--data-dir", data], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "the header needs the file name column" in res.output


def test_a_factors_csv_that_is_a_directory_is_one_line(tmp_path):
    folder = tmp_path / "renders"
    make_folder(folder, LEVELS)
    (folder / "factors.csv").unlink()
    (folder / "factors.csv").mkdir()  # opens (O_RDONLY works on a directory), then fails
    with pytest.raises(DataError, match="factors.csv is not a regular file") as info:
        get_spec(f"folder:{folder}")
    assert "\n" not in str(info.value)


def test_a_folders_shape_factor_is_not_given_dsprites_class_names(tmp_path):
    """A lab's factor that happens to be called 'shape' with 3 levels is not dSprites' square /
    ellipse / heart: its classes are numbers, in the explore view's labels and its parsing."""
    from bvae_tui.engine.analysis.explore import Explorer, class_label, class_names, parse_class

    folder = tmp_path / "renders"
    make_folder(folder, ([0, 1, 2], [0, 15]), names=("shape", "light"))
    ds = prepare(f"folder:{folder}", tmp_path / "data")
    assert class_names("shape", 3, ds) is None and class_label("shape", 3, 2, ds) == "2"
    with pytest.raises(ConfigError) as info:
        parse_class(ds, "shape", "9")
    assert "square" not in str(info.value)
    with pytest.raises(ConfigError, match="must be a number"):
        parse_class(ds, "shape", "heart")
    explorer = Explorer.__new__(Explorer)  # only its factor lookups: no model needed
    explorer.dataset = ds
    row = int(ds.index_of(np.array([[2, 1]]))[0])
    assert "shape=2" in explorer.describe_index(row)
    # dSprites keeps its names.
    mini = open_dataset("dsprites-mini", tmp_path / "data")
    assert class_names("shape", 3, mini) == ("square", "ellipse", "heart")
    assert parse_class(mini, "shape", "heart") == 2


def test_brackets_in_a_folders_path_and_factor_names_are_text_not_markup(tmp_path):
    """A folder called 'x[/]' (and factors named '[red]az') is drawn as it is by `bvae data
    prepare` and `bvae data list`: rich markup there raised a MarkupError traceback."""
    from bvae_tui.cli.main import app

    folder = tmp_path / "br[/]" / "x[red]"
    make_folder(folder, LEVELS, names=("[/]shape", "[red]az"))
    data = str(tmp_path / "data")
    res = CliRunner().invoke(app, ["data", "prepare", f"folder:{folder}", "--data-dir", data],
                             env={"COLUMNS": "300"})
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    assert f"prepared folder:{folder}" in res.output and "[/]shape 2, [red]az 3" in res.output
    res = CliRunner().invoke(app, ["data", "list", "--data-dir", data], env={"COLUMNS": "300"})
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    assert "[red]" in res.output.replace("\n", "")  # drawn, not swallowed as a style
