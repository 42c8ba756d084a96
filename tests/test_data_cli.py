"""`bvae data list | prepare | download | export` through CliRunner, plus one real subprocess."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import zipfile

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bvae_tui.cli.main import app
from datasets import download
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
    from datasets import dsprites

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
