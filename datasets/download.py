"""Resumable, verified downloads (urllib only: no extra dependency).

A download goes to ``<dest>.part``; an interrupted one resumes from there with an HTTP Range
request; the finished file is checked (git blob sha1 for dSprites, md5 for CelebA) and only then
renamed to ``dest``. A file that fails the check is deleted, never kept.

Every source URL can be overridden (``url=`` or env ``BVAE_<NAME>_URL``, e.g.
``BVAE_DSPRITES_URL``), for mirrors and for the tests' local server.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bvae_tui.datasets.cache import ensure_root
from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.registry import (
    CELEBA_MD5,
    DSPRITES_FILE,
    DSPRITES_GIT_BLOB,
    SHAPES3D_FILE,
    SHAPES3D_SIZE,
    data_root,
    get_spec,
)

Progress = Callable[[str, int, "int | None"], None]

_CHUNK = 1 << 20
_USER_AGENT = "bvae-tui-downloader/1"

# name -> (file name in the data dir, checksum kind, expected hex digest or None)
FILES: dict[str, tuple[str, str | None, str | None]] = {
    "dsprites": (DSPRITES_FILE, "git-blob-sha1", DSPRITES_GIT_BLOB),
    "celeba": ("celeba.zip", "md5", CELEBA_MD5),
    "chairs": ("rendered_chairs.tar", None, None),
    "shapes3d": (SHAPES3D_FILE, "size", str(SHAPES3D_SIZE)),
}


def git_blob_sha1(path: Path) -> str:
    """Git's blob id of a file: sha1 of ``b"blob <size>\\0"`` followed by the content."""
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    _hash_file(h, path)
    return h.hexdigest()


def md5(path: Path) -> str:
    h = hashlib.md5()
    _hash_file(h, path)
    return h.hexdigest()


def _hash_file(h, path: Path) -> None:
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)


def checksum(path: Path, kind: str) -> str:
    if kind == "git-blob-sha1":
        return git_blob_sha1(path)
    if kind == "md5":
        return md5(path)
    if kind == "size":  # no published digest (3dshapes): the byte count at least
        return str(path.stat().st_size)
    raise ValueError(f"unknown checksum kind {kind}")


class _Retry(Exception):
    """A transient failure: try again (resuming) after a pause."""


def download_file(url: str, dest: Path, *, check: tuple[str, str] | None = None,
                  progress: Progress | None = None, timeout: float = 30.0, retries: int = 3,
                  backoff: float = 1.0, hint: str = "") -> Path:
    """Download ``url`` to ``dest`` via ``dest.part``, resuming and verifying; return ``dest``.

    ``check``: (kind, expected hex digest). ``hint``: how to get the file by hand, appended to
    the one-line error when the server cannot be reached.
    """
    dest = Path(dest)
    ensure_root(dest.parent)
    part = dest.with_name(dest.name + ".part")
    last_error = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * (2 ** (attempt - 1)))
        try:
            _fetch(url, part, timeout, progress)
            break
        except _Retry as exc:
            last_error = str(exc)
    else:
        kept = f" ({part.stat().st_size} bytes kept in {part.name}; run again to resume)" \
            if part.exists() and part.stat().st_size else ""
        raise DataError(f"cannot download {url}: {last_error}{kept}"
                        + (f"; offline? {hint}" if hint else ""))
    if check is not None:
        kind, expected = check
        if progress:
            progress("verify", 0, None)
        got = checksum(part, kind)
        if got != expected:
            with contextlib.suppress(OSError):
                part.unlink()
            raise DataError(f"download of {url} failed its {kind} check (got {got[:12]}, "
                            f"expected {expected[:12]}); the file was not kept, try again"
                            + (f" or {hint}" if hint else ""))
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, timeout: float, progress: Progress | None) -> None:
    """One attempt: fetch (the rest of) ``url`` into ``part``. Raises _Retry or DataError."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (http/https only)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            # Range not satisfiable: the part file is already complete (or wrong); verify it.
            return
        if exc.code in (404, 410, 401, 403):
            raise DataError(f"{url} answered HTTP {exc.code} ({exc.reason}); check the URL or "
                            "put the file in the data dir by hand") from None
        raise _Retry(f"HTTP {exc.code} {exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:  # URLError, refused, timeout, reset
        reason = getattr(exc, "reason", None) or exc
        raise _Retry(f"{reason}") from None
    with resp:
        status = getattr(resp, "status", 200)
        length = resp.headers.get("Content-Length")
        if have and status == 206:
            start = _content_range_start(resp.headers.get("Content-Range"))
            if start != have:
                part.unlink()
                raise _Retry("server resumed at the wrong offset; starting over")
            mode, done = "ab", have
        else:
            mode, done = "wb", 0  # 200: the server sent the whole file
        total = done + int(length) if length is not None else None
        try:
            fh = open(part, mode)  # noqa: SIM115 (closed below)
        except OSError as exc:
            raise DataError(f"cannot write {part} ({exc.strerror}); pass --data-dir or set "
                            "BVAE_DATA_DIR to a writable folder") from None
        with fh:
            while True:
                try:
                    block = resp.read(_CHUNK)
                except (OSError, http.client.HTTPException) as exc:  # reset, timeout, cut short
                    raise _Retry(f"transfer interrupted after {done} bytes ({exc!r})") from None
                if not block:
                    break
                try:
                    fh.write(block)
                except OSError as exc:
                    raise DataError(f"cannot write {part} ({exc.strerror})") from None
                done += len(block)
                if progress:
                    progress("download", done, total)
        if total is not None and done < total:
            raise _Retry(f"transfer interrupted after {done} of {total} bytes")


def _content_range_start(value: str | None) -> int | None:
    # "bytes 100-199/200"
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


def source_url(name: str, url: str | None = None) -> str:
    """The URL to fetch ``name`` from: ``url``, else env ``BVAE_<NAME>_URL``, else the default."""
    spec = get_spec(name)
    env = os.environ.get(f"BVAE_{spec.name.upper().replace('-', '_')}_URL")
    chosen = url or env or spec.url
    if not chosen:
        raise DataError(f"dataset '{spec.name}' is not downloaded (it is generated or local); "
                        f"run: bvae data prepare {spec.name}")
    return chosen


def download_dataset(name: str, data_dir=None, progress: Progress | None = None,
                     url: str | None = None, **kwargs) -> Path:
    """Download the source file of ``name`` into the data dir (no-op when already there)."""
    spec = get_spec(name)
    if spec.name not in FILES:
        raise DataError(f"dataset '{spec.name}' has nothing to download; choose one of: "
                        f"{', '.join(FILES)}")
    root = ensure_root(data_root(data_dir))
    fname, kind, expected = FILES[spec.name]
    dest = root / fname
    if dest.is_file():
        return dest
    return download_file(source_url(spec.name, url), dest,
                         check=(kind, expected) if kind and expected else None,
                         progress=progress, hint=f"{spec.source_hint} {root}", **kwargs)
