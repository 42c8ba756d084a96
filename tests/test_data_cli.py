"""`bvae data list | prepare | download | export` through CliRunner, plus one real subprocess."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import zipfile

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bvae_tui.cli.main import app
from bvae_tui.datasets import download
from tests.conftest import ROOT, bvae_command
from tests.test_download import _Server

runner = CliRunner()


def _run(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env)


def _error_line(result) -> str:
    assert result.exit_code == 1, result.output
    text = (result.stderr if hasattr(result, "stderr") else result.output).strip()
    assert text.startswith("error: ") and "\n" not in text and "Traceback" not in text
    return text


def test_prepare_list_export(tmp_path):
    data = tmp_path / "data"
    r = _run("data", "prepare", "dsprites-mini", "--data-dir", str(data), "-q")
    assert r.exit_code == 0, r.output
    assert "prepared dsprites-mini: 4,608 images" in r.stdout
    r = _run("data", "prepare", "dsprites-mini", "--data-dir", str(data), "-q")
    assert "already prepared" in r.stdout
    r = _run("data", "list", "--data-dir", str(data), "--json")
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert set(rows) >= {"dsprites", "dsprites-mini", "celeba", "chairs"}
    assert rows["dsprites-mini"]["prepared"] and rows["dsprites-mini"]["source"] == "procedural"
    assert rows["dsprites"]["prepared"] is False and rows["dsprites"]["source"] is None
    r = _run("data", "list", "--data-dir", str(data))
    assert r.exit_code == 0 and "dsprites-mini" in r.stdout and "procedural" in r.stdout
    out = tmp_path / "mini.npz"
    r = _run("data", "export", "dsprites-mini", str(out), "--format", "npz",
             "--data-dir", str(data), "-q")
    assert r.exit_code == 0, r.output
    z = np.load(out, allow_pickle=True, encoding="latin1")
    assert z["imgs"].shape == (4608, 64, 64) and z["imgs"].dtype == np.uint8


def test_prepare_dsprites_offline_says_procedural(tmp_path, monkeypatch):
    # The full grid is too big for a test: the command's flow is the same on the mini grid.
    from bvae_tui.datasets import dsprites

    monkeypatch.setattr(dsprites, "full_grid", dsprites.mini_grid)
    r = _run("data", "prepare", "dsprites", "--data-dir", str(tmp_path), "-q")
    assert r.exit_code == 0, r.output
    assert "source: procedural" in r.stdout and "bvae data download dsprites" in r.stdout


@pytest.mark.parametrize("args, needle", [
    (["data", "prepare", "nope"], "unknown dataset 'nope'"),
    (["data", "prepare", "folder:{tmp}/empty"], "no jpg/png images"),
    (["data", "export", "dsprites-mini", "{tmp}/x.png", "--format", "png"], "format"),
    (["data", "download", "dsprites-mini"], "nothing to download"),
    (["data", "prepare", "celeba", "--no-download"], "celeba.zip"),
])
def test_user_errors_are_one_line(tmp_path, args, needle):
    (tmp_path / "empty").mkdir()
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = _run(*args, "--data-dir", str(tmp_path / "data"), "-q", env={"BVAE_CELEBA_URL":
             "http://127.0.0.1:9/celeba.zip"})
    assert needle in _error_line(r)


def test_download_then_prepare_celeba_from_local_server(tmp_path, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(2):
            img = io.BytesIO()
            Image.new("RGB", (178, 218), (i * 100, 50, 50)).save(img, format="JPEG")
            zf.writestr(f"img_align_celeba/{i:06d}.jpg", img.getvalue())
    payload = buf.getvalue()
    monkeypatch.setitem(download.FILES, "celeba",
                        ("celeba.zip", "md5", hashlib.md5(payload).hexdigest()))
    server = _Server()
    try:
        server.files["/celeba.zip"] = payload
        # no --quiet: the rich progress display (bytes, then decoded images) runs too
        r = _run("data", "download", "celeba", "--url", server.url + "/celeba.zip",
                 "--data-dir", str(tmp_path))
    finally:
        server.close()
    assert r.exit_code == 0, r.output
    assert "prepared celeba: 2 images" in r.stdout
    assert (tmp_path / "celeba.zip").read_bytes() == payload


def test_real_subprocess(tmp_path):
    env = {**os.environ, "BVAE_DATA_DIR": str(tmp_path / "data"), "NO_COLOR": "1"}
    ok = subprocess.run([*bvae_command(), "data", "prepare", "dsprites-mini"], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "prepared dsprites-mini" in ok.stdout
    assert (tmp_path / "data" / "dsprites-mini" / "meta.json").is_file()
    bad = subprocess.run([*bvae_command(), "data", "export", "dsprites-mini",
                          str(tmp_path / "missing" / "x.npz")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "does not exist" in lines[0]


def test_list_at_80_columns_keeps_names_and_shows_damage(tmp_path, mini_data_dir):
    from bvae_tui.datasets.registry import DSPRITES_FILE

    data = tmp_path / "data"
    shutil.copytree(mini_data_dir / "dsprites-mini", data / "dsprites-mini")
    (data / DSPRITES_FILE).write_bytes(b"x")  # a real file present: the long hint
    src = tmp_path / "a-rather-long-folder-name-of-many-images"
    src.mkdir()
    Image.new("RGB", (20, 20)).save(src / "a.png")
    assert _run("data", "prepare", f"folder:{src}", "--data-dir", str(data), "-q").exit_code == 0
    r = _run("data", "list", "--data-dir", str(data), env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    table = [line for line in lines if line[:1] in "┏┃┡│└"]
    assert all(len(line) <= 80 and line[-1] in "┓┃┩│┘" for line in table), r.stdout
    assert "real dSprites file present" in r.stdout
    for name in ("dsprites", "dsprites-mini", "celeba", "chairs", "shapes3d"):
        assert any(line.startswith(f"│ {name} ") for line in lines), r.stdout
    # a truncated cache is not 'yes'
    images = data / "dsprites-mini" / "images.npy"
    images.write_bytes(images.read_bytes()[:1000])
    r = _run("data", "list", "--data-dir", str(data), env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    row = next(line for line in r.stdout.splitlines() if line.startswith("│ dsprites-mini "))
    assert " no " in row and "damaged" in row and " yes " not in row
    assert "bvae data prepare dsprites-mini --force" in " ".join(r.stdout.split())
    r = _run("data", "list", "--data-dir", str(data), "--json")
    st = {row["name"]: row for row in json.loads(r.stdout)}["dsprites-mini"]
    assert st["prepared"] is False and st["source"] == "damaged"
    assert st["fix"] == "bvae data prepare dsprites-mini --force"


def test_list_with_a_file_as_data_dir_is_an_error(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    r = _run("data", "list", "--data-dir", str(afile))
    assert "is not a folder" in _error_line(r)
    r = _run("data", "list", "--data-dir", str(afile), "--json")
    assert "is not a folder" in _error_line(r)
    r = _run("data", "list", "--data-dir", str(afile / "data"))
    assert "not a folder" in _error_line(r)


def test_prepare_notices_a_changed_folder(tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    for i in range(3):
        Image.new("RGB", (20, 20), (i * 50, 0, 0)).save(src / f"{i}.png")
    args = ("data", "prepare", f"folder:{src}", "--data-dir", str(tmp_path / "data"), "-q")
    r = _run(*args)
    assert r.exit_code == 0 and "prepared folder:" in r.stdout, r.output
    r = _run(*args)
    assert "already prepared (files, 3 images)" in r.stdout
    (src / "0.png").unlink()
    (src / "1.png").unlink()
    Image.new("RGB", (20, 20)).save(src / "new.png")
    r = _run("data", "list", "--data-dir", str(tmp_path / "data"))
    assert "folder changed since it was prepared" in " ".join(r.stdout.split())
    r = _run(*args)
    assert r.exit_code == 0, r.output
    assert "folder changed since it was prepared: rebuilding" in r.stdout
    assert "already prepared" not in r.stdout and "2 images" in r.stdout
    r = _run(*args)
    assert "already prepared (files, 2 images)" in r.stdout
    shutil.rmtree(src)
    r = _run("data", "list", "--data-dir", str(tmp_path / "data"), "--json")
    st = next(row for row in json.loads(r.stdout) if row["name"] == f"folder:{src}")
    assert st["stale"] and "does not exist" in st["problem"] and st["fix"] is None


def test_export_into_a_file_says_not_a_folder(tmp_path, mini_data_dir):
    (tmp_path / "afile").write_text("x")
    r = _run("data", "export", "dsprites-mini", str(tmp_path / "afile" / "x.npz"),
             "--data-dir", str(mini_data_dir), "-q")
    line = _error_line(r)
    assert "afile is not a folder" in line and "does not exist" not in line
