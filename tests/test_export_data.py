"""`bvae export csv|tensorboard RUN...`: files read back (the event files with tensorboard's own
reader), and one-line errors that leave nothing half-written."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from bvae_tui.engine.analysis import render
from tests.compare_helpers import make_run, one_line_error, row


def bvae(*args: str):
    from bvae_tui.cli.main import app

    return CliRunner().invoke(app, list(args))


@pytest.fixture
def two(runs_dir):
    a = make_run(runs_dir, "a", beta=1.0, seed=3,
                 rows=[row(100, 300.0, 8.0, [4.0, 3.0, 1.0]), row(200, 250.0, 9.0,
                                                              [5.0, 3.0, 1.0])],
                 scores={"betavae": 0.7, "mig": 0.05})
    b = make_run(runs_dir, "b", beta=8.0, seed=3, objective="H",
                 rows=[row(100, 350.0, 2.0, [2.0, 0.0, 0.0]), row(200, 320.0, 2.5,
                                                              [2.5, 0.0, 0.0]),
                       row(300, 310.0, 2.6, [2.6, 0.0, 0.0])])
    return a, b


def test_csv_one_line_per_row_with_the_differing_fields(two, tmp_path):
    a, b = two
    target = tmp_path / "out" / "rows.csv"
    result = bvae("export", "csv", a.id, b.name, "-o", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(target)
    with open(target, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5
    header = list(rows[0])
    assert header[:3] == ["run", "name", "beta"]  # beta is what differs; seed does not
    assert "seed" not in header
    assert {"iter", "loss", "recon", "kl", "c", "img_per_s", "kl_z0", "kl_z2", "mu_z0",
            "var_z2"} <= set(header)
    first = rows[0]
    assert first["run"] == a.id and first["name"] == "a" and float(first["beta"]) == 1.0
    assert int(first["iter"]) == 100 and float(first["loss"]) == 300.0
    assert [float(first[f"kl_z{i}"]) for i in range(3)] == [4.0, 3.0, 1.0]
    assert first["c"] == ""  # objective H logs no C
    assert [r["iter"] for r in rows if r["run"] == b.id] == ["100", "200", "300"]


def test_tensorboard_event_files_read_back(two, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata as hp_metadata

    a, b = two
    image = np.zeros((20, 30, 3), np.uint8)
    image[:, :10, 0] = 255
    a.previews_dir.mkdir()
    render.write_png(a.preview_path("traversal"), image)
    out = tmp_path / "tb"
    result = bvae("export", "tensorboard", a.id, b.id, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(out / a.id), str(out / b.id)]
    assert sorted(p.name for p in out.iterdir()) == sorted([a.id, b.id])  # no staging left

    acc = EventAccumulator(str(out / a.id), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"train/loss", "train/recon", "train/kl", "kl_per_latent/z0", "kl_per_latent/z2",
            "eval/betavae", "eval/mig"} <= set(tags["scalars"])
    assert "train/c" not in tags["scalars"]
    loss = acc.Scalars("train/loss")
    assert [(e.step, e.value) for e in loss] == [(100, 300.0), (200, 250.0)]
    assert [e.value for e in acc.Scalars("kl_per_latent/z1")] == [3.0, 3.0]
    assert math.isclose(acc.Scalars("eval/betavae")[0].value, 0.7, rel_tol=1e-6)
    (img,) = acc.Images("preview/traversal")
    assert (img.width, img.height) == (30, 20) and img.step == 200
    assert img.encoded_image_string == a.preview_path("traversal").read_bytes()

    content = acc.PluginTagToContent(hp_metadata.PLUGIN_NAME)
    start = hp_metadata.parse_session_start_info_plugin_data(
        content[hp_metadata.SESSION_START_INFO_TAG])
    assert start.hparams["beta"].number_value == 1.0
    assert start.hparams["objective"].string_value == "H"
    assert start.hparams["seed"].number_value == 3
    end = hp_metadata.parse_session_end_info_plugin_data(
        content[hp_metadata.SESSION_END_INFO_TAG])
    from tensorboard.plugins.hparams import api_pb2

    assert end.status == api_pb2.STATUS_SUCCESS

    acc_b = EventAccumulator(str(out / b.id))
    acc_b.Reload()
    assert [e.step for e in acc_b.Scalars("train/kl")] == [100, 200, 300]
    assert not any(t.startswith("eval/") for t in acc_b.Tags()["scalars"])

    # A second export of the same run replaces its folder (no duplicated events).
    assert bvae("export", "tensorboard", a.id, "-o", str(out)).exit_code == 0
    again = EventAccumulator(str(out / a.id))
    again.Reload()
    assert len(again.Scalars("train/loss")) == 2
    assert len(list((out / a.id).iterdir())) == 1


def test_bad_input_writes_nothing(runs_dir, two, tmp_path):
    a, _ = two
    empty = make_run(runs_dir, "empty", rows=[])
    target = tmp_path / "rows.csv"
    one_line_error(bvae("export", "csv", empty.id, "-o", str(target)),
                    "no metrics rows yet in")
    assert not target.exists()
    one_line_error(bvae("export", "tensorboard", empty.id, "-o", str(tmp_path / "tb")),
                    "no metrics rows yet in")
    assert not (tmp_path / "tb").exists()
    one_line_error(bvae("export", "csv", a.id, "-o", str(tmp_path / "rows.txt")),
                    "must end in .csv")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error(bvae("export", "csv", a.id, "-o", str(blocker / "rows.csv")),
                    "is a file, not a folder")
    one_line_error(bvae("export", "tensorboard", a.id, "-o", str(blocker)), "is a file")
    one_line_error(bvae("export", "tensorboard", a.id, "-o", str(blocker / "tb")),
                    "is a file, not a folder")
    assert blocker.read_text() == "x"
    one_line_error(bvae("export", "csv", "nosuch", "-o", str(target)), "no run 'nosuch'")


def test_missing_extra_says_how_to_install(two, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import fails as if not installed
    a, _ = two
    one_line_error(bvae("export", "tensorboard", a.id, "-o", str(tmp_path / "tb")),
                    "pip install 'bvae-tui[tensorboard]'")
    assert not (tmp_path / "tb").exists()
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    one_line_error(bvae("compare", a.id, "--plot", str(tmp_path / "f.png")),
                    "pip install 'bvae-tui[plot]'")
