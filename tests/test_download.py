"""Downloads against a local HTTP server on 127.0.0.1 started by the test (Range, cut transfers)."""

from __future__ import annotations

import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bvae_tui.datasets import download
from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.registry import DSPRITES_FILE

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # ~1 MB, not a multiple of the read size


def _blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Server:
    """Serves ``files`` (path -> bytes) with a strong ETag (a hash of the content), as real
    servers do. Options per path: ``cut`` (first N transfers stop half way), ``no_range``
    (ignore Range headers), ``validator``: "etag" (default), "weak-etag", "last-modified" or
    "none" (what the responses carry, and what If-Range is compared with), ``redirect``
    (path -> Location, answered 302). ``requests``: (path, Range) of each request;
    ``headers``: all the request headers of each."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.no_range: set[str] = set()
        self.validator: dict[str, str] = {}
        self.redirect: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.headers: list[dict[str, str]] = []
        self._versions: dict[str, list[str]] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                server.headers.append(dict(self.headers.items()))
                if self.path in server.redirect:
                    self.send_response(302)
                    self.send_header("Location", server.redirect[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                validator = server.validator_of(self.path)
                if_range = self.headers.get("If-Range")
                if if_range is not None and (if_range != validator or if_range.startswith("W/")):
                    rng = None  # RFC 9110: changed (or only weakly known), send all of it
                start = 0
                if rng and self.path not in server.no_range:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                kind = server.validator.get(self.path, "etag")
                if kind in ("etag", "weak-etag"):
                    self.send_header("ETag", validator)
                elif kind == "last-modified":
                    self.send_header("Last-Modified", validator)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut.get(self.path, 0) > 0:
                    server.cut[self.path] -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def validator_of(self, path: str) -> str | None:
        """The ETag or Last-Modified value ``path`` is served with now (it changes with the
        content), or None."""
        kind = self.validator.get(path, "etag")
        digest = hashlib.sha1(self.files.get(path, b"")).hexdigest()
        if kind == "etag":
            return f'"{digest[:16]}"'
        if kind == "weak-etag":
            return f'W/"{digest[:16]}"'
        if kind == "last-modified":
            # one date per version of the content, in the order they were served
            seen = self._versions.setdefault(path, [])
            if digest not in seen:
                seen.append(digest)
            return f"Mon, 01 Jan 2024 00:00:{seen.index(digest):02d} GMT"
        return None

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def _fetch(server, path, dest, **kw):
    kw.setdefault("retries", 2)
    kw.setdefault("backoff", 0.0)
    kw.setdefault("timeout", 5.0)
    return download.download_file(server.url + path, dest, **kw)


def test_git_blob_sha1_is_gits(tmp_path):
    p = tmp_path / "hello"
    p.write_bytes(b"hello\n")
    assert download.git_blob_sha1(p) == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_success_with_progress(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    seen = []
    dest = tmp_path / "f.bin"
    out = _fetch(server, "/f.bin", dest, check=("git-blob-sha1", _blob(PAYLOAD)),
                 progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert out == dest and dest.read_bytes() == PAYLOAD
    assert ("download", len(PAYLOAD), len(PAYLOAD)) in seen
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_checksum_mismatch_keeps_nothing(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    with pytest.raises(DataError) as exc:
        _fetch(server, "/f.bin", tmp_path / "f.bin", check=("git-blob-sha1", "0" * 40))
    msg = str(exc.value)
    assert "check" in msg and "not kept" in msg and "\n" not in msg
    assert list(tmp_path.iterdir()) == []


def test_interrupted_transfer_resumes_within_one_call(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.cut["/f.bin"] = 1
    dest = _fetch(server, "/f.bin", tmp_path / "f.bin", check=("md5", hashlib.md5(
        PAYLOAD).hexdigest()))
    assert dest.read_bytes() == PAYLOAD
    ranges = [r for p, r in server.requests]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    assert int(ranges[1][6:-1]) > 0


def test_interrupted_transfer_resumes_on_next_run(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.cut["/f.bin"] = 1
    dest = tmp_path / "f.bin"
    with pytest.raises(DataError) as exc:
        _fetch(server, "/f.bin", dest, retries=0)
    assert "run again to resume" in str(exc.value)
    part = tmp_path / "f.bin.part"
    kept = part.stat().st_size
    assert 0 < kept < len(PAYLOAD) and not dest.exists()
    _fetch(server, "/f.bin", dest, check=("git-blob-sha1", _blob(PAYLOAD)))
    assert dest.read_bytes() == PAYLOAD and not part.exists()
    assert server.requests[-1][1] == f"bytes={kept}-"


def test_server_without_range_support_restarts(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.no_range.add("/f.bin")
    (tmp_path / "f.bin.part").write_bytes(b"stale partial data")
    dest = _fetch(server, "/f.bin", tmp_path / "f.bin", check=("git-blob-sha1", _blob(PAYLOAD)))
    assert dest.read_bytes() == PAYLOAD


def test_404_is_one_line_and_not_retried(server, tmp_path):
    with pytest.raises(DataError) as exc:
        _fetch(server, "/missing.bin", tmp_path / "x.bin")
    assert "HTTP 404" in str(exc.value) and "\n" not in str(exc.value)
    assert len(server.requests) == 1
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_says_where_to_put_the_file(tmp_path, monkeypatch):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    monkeypatch.setenv("BVAE_DSPRITES_URL", f"http://127.0.0.1:{port}/{DSPRITES_FILE}")
    with pytest.raises(DataError) as exc:
        download.download_dataset("dsprites", tmp_path, retries=1, backoff=0.0, timeout=2.0)
    msg = str(exc.value)
    assert "\n" not in msg and "cannot download" in msg
    assert f"put {DSPRITES_FILE}" in msg and str(tmp_path) in msg
    assert not (tmp_path / DSPRITES_FILE).exists()


def test_download_dataset_uses_env_url_and_checks_blob(server, tmp_path, monkeypatch):
    server.files["/ds.npz"] = PAYLOAD
    monkeypatch.setenv("BVAE_DSPRITES_URL", server.url + "/ds.npz")
    # the real file's blob id: our payload fails it and is not kept
    with pytest.raises(DataError, match="git-blob-sha1 check"):
        download.download_dataset("dsprites", tmp_path, backoff=0.0)
    assert not (tmp_path / DSPRITES_FILE).exists()
    monkeypatch.setitem(download.FILES, "dsprites",
                        (DSPRITES_FILE, "git-blob-sha1", _blob(PAYLOAD)))
    path = download.download_dataset("dsprites", tmp_path, backoff=0.0)
    assert path == tmp_path / DSPRITES_FILE and path.read_bytes() == PAYLOAD
    # already there: no second request
    n = len(server.requests)
    assert download.download_dataset("dsprites", tmp_path) == path
    assert len(server.requests) == n


def test_nothing_to_download():
    with pytest.raises(DataError, match="nothing to download"):
        download.download_dataset("dsprites-mini")


def test_not_enough_disk_for_a_download_is_said_before_writing(server, tmp_path, monkeypatch):
    """MPI3D's npz is 12 GB: a disk that cannot hold what the server announces is a one-line
    error naming how much is needed, before a byte is written (not an ENOSPC half way)."""
    import shutil
    from collections import namedtuple

    server.files["/big.bin"] = PAYLOAD
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10, 10, len(PAYLOAD) // 2))
    with pytest.raises(DataError) as exc:
        _fetch(server, "/big.bin", tmp_path / "big.bin", check=("git-blob-sha1", _blob(PAYLOAD)))
    msg = str(exc.value)
    assert "not enough disk" in msg and "--data-dir" in msg and "\n" not in msg, msg
    assert list(tmp_path.iterdir()) == []
