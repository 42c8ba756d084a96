"""Hostile or damaged input to the data layer: zip and tar bombs, damaged archive entries,
compressed "tars", FIFOs in image folders, crafted npz headers, and downloads that could put an
unverified file in place (no digest, a stale ``.part`` answered with 416, a redirect to another
host, a resume that would splice two versions of a file).

Each case ends in a counted skip or a one-line DataError, with memory bounded and nothing
half-written; downloads run against local HTTP servers on 127.0.0.1 (tests/test_download.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from bvae_tui.datasets import download
from bvae_tui.datasets.errors import DataError
from tests.conftest import ROOT
from tests.test_download import PAYLOAD, _Server

MiB = 1 << 20


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg
    return msg


def _run_python(script: str, *args: str, timeout: float = 120) -> dict:
    """Run ``script`` in a fresh interpreter (its own peak RSS; a hang cannot take the test
    process with it) and return the JSON object it prints last."""
    proc = subprocess.run([sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _stored_png(size: tuple[int, int]) -> bytes:
    """A valid PNG with no compression of its own: megabytes that deflate 1000:1 in a zip."""
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 90, 90)).save(buf, format="PNG", compress_level=0)
    return buf.getvalue()


# --- item 9: digests, 416 on a stale .part, redirects, If-Range ----------------------------------

@pytest.fixture
def servers():
    """Start as many local servers as a test needs (two = two hosts for redirects)."""
    started: list[_Server] = []

    def start() -> _Server:
        started.append(_Server())
        return started[-1]

    yield start
    for s in started:
        s.close()


def _get(server: _Server, path: str, dest: Path, **kw) -> Path:
    kw.setdefault("retries", 0)
    kw.setdefault("backoff", 0.0)
    kw.setdefault("timeout", 5.0)
    return download.download_file(server.url + path, dest, **kw)


def _md5(data: bytes) -> tuple[str, str]:
    return ("md5", hashlib.md5(data).hexdigest())


_HEX_LENGTHS = {"md5": 32, "sha256": 64, "git-blob-sha1": 40}


def test_every_registered_file_has_a_digest():
    assert set(download.FILES) == {"dsprites", "celeba", "chairs", "shapes3d"}
    for name, (_fname, kind, expected) in download.FILES.items():
        assert kind in _HEX_LENGTHS, f"{name}: {kind}"
        assert expected is not None and len(expected) == _HEX_LENGTHS[kind], name
        int(expected, 16)  # hex
    assert download.FILES["shapes3d"][1] == "sha256"


def test_sha256_checksum_is_hashlibs(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(PAYLOAD)
    assert download.checksum(p, "sha256") == hashlib.sha256(PAYLOAD).hexdigest()


def test_chairs_download_is_verified(servers, tmp_path, monkeypatch):
    server = servers()
    server.files["/rendered_chairs.tar"] = PAYLOAD  # not the real file: refused, not kept
    monkeypatch.setenv("BVAE_CHAIRS_URL", server.url + "/rendered_chairs.tar")
    with pytest.raises(DataError) as exc:
        download.download_dataset("chairs", tmp_path, retries=0, backoff=0.0)
    assert "md5 check" in _one_line(exc)
    assert list(tmp_path.iterdir()) == []


def _complete_part_left_behind(server: _Server, dest: Path) -> Path:
    """Download ``dest`` but stop (as a Ctrl-C would) after its last byte is written and
    before it is verified and renamed: ``<dest>.part`` complete, the server's state recorded."""
    def stop_at_the_end(stage, done, total):
        if stage == "download" and done == total:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _get(server, "/f.bin", dest, progress=stop_at_the_end)
    part = dest.with_name(dest.name + ".part")
    assert part.read_bytes() == server.files["/f.bin"] and not dest.exists()
    return part


@pytest.mark.parametrize("check", [True, False])
def test_stale_part_answered_416_is_never_renamed_unverified(servers, tmp_path, check):
    server = servers()
    server.files["/f.bin"] = PAYLOAD
    dest = tmp_path / "f.bin"
    part = _complete_part_left_behind(server, dest)
    part.write_bytes(b"x" * len(PAYLOAD))  # same length, other bytes (a disk error, a bug)
    n = len(server.requests)
    _get(server, "/f.bin", dest, check=_md5(PAYLOAD) if check else None)
    assert dest.read_bytes() == PAYLOAD
    # the resume was refused (416), the part deleted and the file fetched again from byte 0
    assert [r for _, r in server.requests[n:]] == [f"bytes={len(PAYLOAD)}-", None]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_complete_part_answered_416_that_verifies_is_kept(servers, tmp_path):
    server = servers()
    server.files["/f.bin"] = PAYLOAD
    dest = tmp_path / "f.bin"
    _complete_part_left_behind(server, dest)
    n = len(server.requests)
    _get(server, "/f.bin", dest, check=_md5(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD and len(server.requests) == n + 1  # no second transfer
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_redirect_to_another_host_is_refused_in_one_line(servers, tmp_path, monkeypatch):
    origin, other = servers(), servers()  # 127.0.0.1 on two ports: two origins
    other.files["/rendered_chairs.tar"] = PAYLOAD
    target = other.url + "/rendered_chairs.tar"
    origin.redirect["/rendered_chairs.tar"] = target
    monkeypatch.setenv("BVAE_CHAIRS_URL", origin.url + "/rendered_chairs.tar")
    monkeypatch.setitem(download.FILES, "chairs", ("rendered_chairs.tar", *_md5(PAYLOAD)))
    with pytest.raises(DataError) as exc:
        download.download_dataset("chairs", tmp_path, retries=0, backoff=0.0)
    msg = _one_line(exc)
    assert target in msg and "another host" in msg
    assert "put rendered_chairs.tar" in msg and str(tmp_path) in msg  # how to do it by hand
    assert other.requests == [] and list(tmp_path.iterdir()) == []


def test_redirect_on_the_same_host_is_followed(servers, tmp_path):
    server = servers()
    server.files["/f.bin"] = PAYLOAD
    server.redirect["/old.bin"] = "/f.bin"
    server.redirect["/older.bin"] = server.url + "/old.bin"
    dest = _get(server, "/older.bin", tmp_path / "f.bin", check=_md5(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert [p for p, _ in server.requests] == ["/older.bin", "/old.bin", "/f.bin"]


def _cut_once(server: _Server, dest: Path) -> Path:
    """One attempt that breaks half way: a ``.part`` (and what is known of it) left behind."""
    server.cut["/f.bin"] = 1
    with pytest.raises(DataError, match="run again to resume"):
        _get(server, "/f.bin", dest)
    part = dest.with_name(dest.name + ".part")
    assert 0 < part.stat().st_size < len(server.files["/f.bin"])
    return part


@pytest.mark.parametrize("validator", ["etag", "last-modified"])
def test_resume_sends_if_range_with_the_first_responses_validator(servers, tmp_path, validator):
    server = servers()
    server.files["/f.bin"] = PAYLOAD
    server.validator["/f.bin"] = validator
    dest = tmp_path / "f.bin"
    kept = _cut_once(server, dest).stat().st_size
    _get(server, "/f.bin", dest, check=_md5(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    last = server.headers[-1]
    assert last.get("Range") == f"bytes={kept}-"
    assert last.get("If-Range") == server.validator_of("/f.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]  # the .part's notes too


def test_resume_after_the_file_changed_on_the_server_starts_over(servers, tmp_path):
    server = servers()
    server.files["/f.bin"] = PAYLOAD
    dest = tmp_path / "f.bin"
    _cut_once(server, dest)
    new = PAYLOAD[::-1]  # a new version, the same length: only the validator tells them apart
    server.files["/f.bin"] = new
    _get(server, "/f.bin", dest, check=_md5(new))  # before: old head + new tail, md5 failed
    assert dest.read_bytes() == new


@pytest.mark.parametrize("validator", ["none", "weak-etag"])
def test_without_a_strong_validator_a_broken_download_starts_over(servers, tmp_path, validator):
    # Range without If-Range could splice two versions of the file: never sent.
    server = servers()
    server.files["/f.bin"] = PAYLOAD
    server.validator["/f.bin"] = validator
    dest = tmp_path / "f.bin"
    _cut_once(server, dest)
    _get(server, "/f.bin", dest, check=_md5(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[-1][1] is None and "If-Range" not in server.headers[-1]
