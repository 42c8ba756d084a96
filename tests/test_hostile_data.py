"""Hostile or damaged input to the data layer: zip and tar bombs, damaged archive entries,
compressed "tars", FIFOs in image folders, crafted npz headers, and downloads that could put an
unverified file in place (no digest, a stale ``.part`` answered with 416, a redirect to another
host, a resume that would splice two versions of a file).

Each case ends in a counted skip or a one-line DataError, with memory bounded and nothing
half-written; downloads run against local HTTP servers on 127.0.0.1 (tests/test_download.py).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bvae_tui.datasets import download, dsprites, images
from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.prepare import open_dataset, prepare
from bvae_tui.datasets.registry import DSPRITES_FILE
from tests.conftest import ROOT
from tests.test_datasets_files import _jpeg_bytes, _png
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


# --- item 6: zip bombs, ratio, bad CRC; tar: compressed refused, oversize members skipped ----

_PREPARE_RSS = """
import json, sys
import bvae_tui.datasets.decode  # Pillow, imported before the baseline is taken
from bvae_tui.datasets.prepare import prepare

def peak_kib():
    # VmHWM: this process image's own peak RSS (getrusage's ru_maxrss survives exec, so it
    # would start at the parent pytest's peak and hide growth below it)
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))

before = peak_kib()
ds = prepare(sys.argv[1], sys.argv[2])
print(json.dumps({"n": ds.n, "skipped": ds.meta["skipped"],
                  "reasons": ds.meta.get("skipped_reasons"),
                  "grew_mib": (peak_kib() - before) / 1024}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_zip_bomb_entries_are_skipped_without_being_read(tmp_path):
    # Two 200 MiB entries of zeros (about 200 KB each deflated) among three real faces.
    root = tmp_path / "data"
    root.mkdir()
    zeros = bytes(MiB)
    with zipfile.ZipFile(root / "celeba.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for i in range(3):
            zf.writestr(f"img_align_celeba/{i:06d}.jpg", _jpeg_bytes())
        for name in ("bomb1.jpg", "bomb2.jpg"):
            with zf.open(f"img_align_celeba/{name}", "w", force_zip64=True) as fh:
                for _ in range(200):
                    fh.write(zeros)
    assert (root / "celeba.zip").stat().st_size < 2 * MiB
    out = _run_python(_PREPARE_RSS, "celeba", str(root))
    assert out["grew_mib"] < 64, out  # an entry read whole takes 200 MiB at least
    assert out["n"] == 3 and out["skipped"] == 2
    assert out["reasons"] == {"too_big": 2}


def test_entry_under_the_size_cap_but_deflated_1000_to_1_is_skipped(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    png = _stored_png((1500, 1500))  # 6.75 MB, a real image, < the 64 MiB cap
    with zipfile.ZipFile(root / "celeba.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("img_align_celeba/000001.jpg", _jpeg_bytes())
        zf.writestr("img_align_celeba/000002.jpg", _jpeg_bytes())
        zf.writestr("img_align_celeba/000003.png", png)
    assert zf.getinfo("img_align_celeba/000003.png").compress_size * 100 < len(png)
    ds = prepare("celeba", root)
    assert ds.n == 2 and ds.meta["skipped"] == 1
    assert ds.meta["skipped_reasons"] == {"too_big": 1}


def _zip_with_bad_crcs(path: Path, good: int, bad: int) -> None:
    """A stored (uncompressed) zip of ``good + bad`` JPEGs; one byte flipped inside each of the
    last ``bad`` entries' data, so that only their CRC check can notice."""
    names = [f"img_align_celeba/{i:06d}.jpg" for i in range(good + bad)]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name in names:
            zf.writestr(name, _jpeg_bytes())
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        for name in names[good:]:
            info = zf.getinfo(name)
            # local header: 30 bytes, then the name and the extra field (lengths at 26 and 28)
            h = info.header_offset
            start = h + 30 + int.from_bytes(raw[h + 26:h + 28], "little") \
                + int.from_bytes(raw[h + 28:h + 30], "little")
            raw[start + info.file_size // 2] ^= 0x55
    path.write_bytes(bytes(raw))


def test_one_bad_crc_in_celeba_zip_is_skipped_and_counted(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    _zip_with_bad_crcs(root / "celeba.zip", good=3, bad=1)
    ds = prepare("celeba", root)
    assert ds.n == 3 and ds.meta["skipped"] == 1
    assert ds.meta["skipped_reasons"] == {"damaged": 1}


def test_mostly_damaged_zip_fails_in_one_line(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    _zip_with_bad_crcs(root / "celeba.zip", good=1, bad=2)
    with pytest.raises(DataError) as exc:
        prepare("celeba", root)
    msg = _one_line(exc)
    assert "2 of 3" in msg and "damaged" in msg and "download it again" in msg
    assert sorted(p.name for p in root.iterdir()) == ["celeba.zip"]  # no cache, no temp


def _render_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (60, 60), (0, 0, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


def _tar_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_gzip_compressed_tar_is_refused_in_one_line(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    tar = _tar_bytes({"rendered_chairs/m1/renders/image_000.png": _render_png()})
    (root / "rendered_chairs.tar").write_bytes(gzip.compress(tar))
    with pytest.raises(DataError) as exc:
        prepare("chairs", root)
    msg = _one_line(exc)
    assert "gzip" in msg and "rendered_chairs.tar" in msg and "gunzip" in msg
    assert sorted(p.name for p in root.iterdir()) == ["rendered_chairs.tar"]


def test_tar_member_over_the_size_cap_is_skipped_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_ENTRY_BYTES", 1 * MiB, raising=False)
    root = tmp_path / "data"
    root.mkdir()
    big = _stored_png((800, 800))  # a real render of 1.9 MB
    (root / "rendered_chairs.tar").write_bytes(_tar_bytes({
        "rendered_chairs/m1/renders/image_000.png": _render_png(),
        "rendered_chairs/m1/renders/image_001.png": big,
        "rendered_chairs/m2/renders/image_000.png": _render_png(),
    }))
    ds = prepare("chairs", root)
    assert ds.n == 2 and ds.meta["skipped"] == 1
    assert ds.meta["skipped_reasons"] == {"too_big": 1}


# --- item 10: FIFOs in folders, crafted npz headers ----------------------------------------------

_PREPARE_FOLDER = """
import json, sys
from bvae_tui.datasets.prepare import prepare
ds = prepare("folder:" + sys.argv[1], sys.argv[2])
print(json.dumps({"n": ds.n, "skipped": ds.meta["skipped"],
                  "reasons": ds.meta.get("skipped_reasons")}))
"""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_in_a_folder_is_skipped_not_waited_on(tmp_path):
    # Policy: a symlink to a regular file is read; FIFOs (and links to them), devices and
    # sockets are never opened for reading. A subprocess: the old code blocks in open() forever.
    src = tmp_path / "imgs"
    _png(src / "a.png")
    _png(tmp_path / "elsewhere" / "real.png")
    (src / "b.png").symlink_to(tmp_path / "elsewhere" / "real.png")
    os.mkfifo(src / "c.png")
    os.mkfifo(tmp_path / "fifo")
    (src / "d.png").symlink_to(tmp_path / "fifo")
    out = _run_python(_PREPARE_FOLDER, str(src), str(tmp_path / "data"), timeout=60)
    assert out["n"] == 2 and out["skipped"] == 2
    assert out["reasons"] == {"not_a_file": 2}


def _crafted_npz(exported: Path, out: Path, key: str, shape: tuple[int, ...]) -> None:
    """``exported`` (a valid npz) with member ``key`` replaced by a bare header claiming
    ``shape``: a few hundred bytes that describe petabytes."""
    dtype = np.int64 if key == "latents_classes" else np.float64
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
        "shape": shape})
    with zipfile.ZipFile(exported) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = header.getvalue() + bytes(64) if info.filename == f"{key}.npy" \
                else src.read(info)
            dst.writestr(info.filename, data, zipfile.ZIP_DEFLATED)


@pytest.mark.parametrize("key, shape", [
    ("latents_classes", (4608, 10**12)),
    ("latents_values", (4608, 10**12)),
    ("latents_classes", (10**12, 6)),
])
def test_crafted_npz_header_is_one_line_before_any_allocation(tmp_path, mini_data_dir,
                                                              monkeypatch, key, shape):
    from bvae_tui.datasets.npz import export_npz

    monkeypatch.setattr(dsprites, "full_grid", dsprites.mini_grid)  # the flow of the full one
    exported = export_npz(open_dataset("dsprites-mini", mini_data_dir), tmp_path / "ok.npz")
    root = tmp_path / "data"
    root.mkdir()
    _crafted_npz(exported, root / DSPRITES_FILE, key, shape)
    with pytest.raises(DataError) as exc:  # before: MemoryError (37 PB asked for)
        prepare("dsprites", root)
    msg = _one_line(exc)
    assert DSPRITES_FILE in msg and key in msg and "expected" in msg
    assert sorted(p.name for p in root.iterdir()) == [DSPRITES_FILE]


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
