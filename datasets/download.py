"""Resumable, verified downloads (urllib only: no extra dependency).

A download goes to ``<dest>.part``; the finished file is checked against its published digest
(git blob sha1 for dSprites, md5 for CelebA and 3D Chairs, sha256 for 3dshapes) and only then
renamed to ``dest``. A file that fails the check is deleted, never kept.

Resuming never splices two versions of a file: the first response's strong ETag (else its
Last-Modified) is kept beside the part in ``<dest>.part.meta`` and sent as ``If-Range`` with the
``Range`` request, so a server whose file changed sends all of it again; without such a
validator a broken download starts over. A part the server calls complete (HTTP 416) is renamed
into place only if it verifies, else it is deleted and the download starts over once. Redirects
are followed on the same host only: one to another host is refused with a one-line error.

Every source URL can be overridden (``url=`` or env ``BVAE_<NAME>_URL``, e.g.
``BVAE_DSPRITES_URL``), for mirrors and for the tests' local server.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from bvae_tui.datasets.cache import ensure_root
from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.realsets_files import SOURCES, file_url
from bvae_tui.datasets.registry import (
    CELEBA_MD5,
    CHAIRS_MD5,
    DSPRITES_FILE,
    DSPRITES_GIT_BLOB,
    SHAPES3D_FILE,
    SHAPES3D_SHA256,
    data_root,
    get_spec,
)

Progress = Callable[[str, int, "int | None"], None]

_CHUNK = 1 << 20
_USER_AGENT = "bvae-tui-downloader/1"

# name -> (file name in the data dir, checksum kind, expected hex digest); where each digest
# comes from: datasets/registry.py
FILES: dict[str, tuple[str, str, str]] = {
    "dsprites": (DSPRITES_FILE, "git-blob-sha1", DSPRITES_GIT_BLOB),
    "celeba": ("celeba.zip", "md5", CELEBA_MD5),
    "chairs": ("rendered_chairs.tar", "md5", CHAIRS_MD5),
    "shapes3d": (SHAPES3D_FILE, "sha256", SHAPES3D_SHA256),
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
    if kind in ("md5", "sha256"):
        h = hashlib.new(kind)
        _hash_file(h, path)
        return h.hexdigest()
    raise ValueError(f"unknown checksum kind {kind}")


class _Retry(Exception):
    """A transient failure: try again (resuming) after a pause."""


class _OtherHost(Exception):
    """The server redirected to another host; ``url`` is where."""

    def __init__(self, url: str):
        super().__init__(url)
        self.url = url


_RANGE_REFUSED = "range-refused"  # HTTP 416 to a resume: the part may already be complete


def download_file(url: str, dest: Path, *, check: tuple[str, str] | None = None,
                  progress: Progress | None = None, timeout: float = 30.0, retries: int = 3,
                  backoff: float = 1.0, hint: str = "") -> Path:
    """Download ``url`` to ``dest`` via ``dest.part``, resuming and verifying; return ``dest``.

    ``check``: (kind, expected hex digest). ``hint``: how to get the file by hand, appended to
    the one-line error when the server cannot be reached or redirects elsewhere.
    """
    dest = Path(dest)
    ensure_root(dest.parent)
    part = _part_of(dest)
    for fresh in (False, True):
        outcome = _fetch_with_retries(url, part, timeout, retries, backoff, progress, hint)
        if outcome != _RANGE_REFUSED:
            break
        # The server holds no byte past the part's end. Only the digest can say the part is
        # the file (and not a longer, older or damaged one): unverified, start over once.
        if check is not None and _mismatch(part, check, progress) is None:
            return _finish(part, dest)
        _discard(part)
        if fresh:  # cannot happen (a fresh start sends no Range); never loop on a bad server
            raise DataError(f"{url} refused a download from byte 0 (HTTP 416); try again later"
                            + (f" or {hint}" if hint else ""))
    if check is not None and (got := _mismatch(part, check, progress)) is not None:
        _discard(part)
        kind, expected = check
        raise DataError(f"download of {url} failed its {kind} check (got {got[:12]}, "
                        f"expected {expected[:12]}); the file was not kept, try again"
                        + (f" or {hint}" if hint else ""))
    return _finish(part, dest)


def _fetch_with_retries(url: str, part: Path, timeout: float, retries: int, backoff: float,
                        progress: Progress | None, hint: str) -> str | None:
    """Fetch (the rest of) ``url`` into ``part``, retrying transient failures with a growing
    pause; returns what :func:`_fetch` returns, raises a one-line DataError when it gives up."""
    last_error = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * (2 ** (attempt - 1)))
        try:
            return _fetch(url, part, timeout, progress)
        except _Retry as exc:
            last_error = str(exc)
        except _OtherHost as exc:
            how = f"get it by hand and {hint}" if hint else "get it by hand"
            raise DataError(f"{url} redirects to {exc.url}, another host: not followed; {how}, "
                            "or pass that address as the URL if you trust it") from None
    kept = f" ({part.stat().st_size} bytes kept in {part.name}; run again to resume)" \
        if part.exists() and part.stat().st_size else ""
    raise DataError(f"cannot download {url}: {last_error}{kept}"
                    + (f"; offline? {hint}" if hint else ""))


def _mismatch(part: Path, check: tuple[str, str], progress: Progress | None) -> str | None:
    """None when ``part`` has the expected digest, else the digest it has."""
    kind, expected = check
    if progress:
        progress("verify", 0, None)
    got = checksum(part, kind)
    return None if got == expected else got


def _finish(part: Path, dest: Path) -> Path:
    os.replace(part, dest)
    with contextlib.suppress(OSError):
        _meta_of(part).unlink()
    return dest


# --- the part file and what is known about it ----------------------------------------------------

def _part_of(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _meta_of(part: Path) -> Path:
    return part.with_name(part.name + ".meta")


def _discard(part: Path) -> None:
    for path in (part, _meta_of(part)):
        with contextlib.suppress(OSError):
            path.unlink()


def _validator(headers) -> str | None:
    """What identifies this version of the file for If-Range: a strong ETag, else the
    Last-Modified date (RFC 9110 allows no weak ETag there), else None."""
    etag = (headers.get("ETag") or "").strip()
    if etag and not etag.startswith("W/"):
        return etag
    return (headers.get("Last-Modified") or "").strip() or None


def _resumable(part: Path, url: str) -> tuple[int, str | None]:
    """(bytes to resume from, the validator to send as If-Range); (0, None) after discarding a
    part that cannot be resumed safely: none recorded for it, another URL, or no validator."""
    size = part.stat().st_size if part.exists() else 0
    try:
        meta = json.loads(_meta_of(part).read_text())
    except (OSError, ValueError):
        meta = None
    validator = meta.get("validator") if isinstance(meta, dict) else None
    if size and isinstance(validator, str) and validator and meta.get("url") == url:
        return size, validator
    _discard(part)
    return 0, None


def _write_meta(part: Path, url: str, validator: str | None) -> None:
    """Record what the (now empty) part will hold; no validator: nothing, so no resume."""
    meta = _meta_of(part)
    if validator is None:
        with contextlib.suppress(OSError):
            meta.unlink()
        return
    tmp = meta.with_name(meta.name + ".tmp")
    try:
        tmp.write_text(json.dumps({"url": url, "validator": validator}))
        os.replace(tmp, meta)
    except OSError as exc:
        raise DataError(f"cannot write {meta} ({exc.strerror}); pass --data-dir or set "
                        "BVAE_DATA_DIR to a writable folder") from None


# --- one request ---------------------------------------------------------------------------------

def _port(parts) -> int | None:
    try:
        return parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:  # a malformed port
        return None


def same_host(url: str, target: str) -> bool:
    """Whether a redirect from ``url`` to ``target`` stays on the host we were given: the same
    host name and port, or the same host name moving from http to https on default ports."""
    a, b = urlsplit(url), urlsplit(target)
    if not a.hostname or (a.hostname or "").lower() != (b.hostname or "").lower():
        return False
    if a.scheme == b.scheme:
        return _port(a) is not None and _port(a) == _port(b)
    return (a.scheme, _port(a), b.scheme, _port(b)) == ("http", 80, "https", 443)


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """urllib's redirect handling, refusing any hop to another host (a mirror we were not
    asked to trust), checked hop by hop so that a chain cannot leave either."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not same_host(req.full_url, newurl):
            raise _OtherHost(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_SameHostRedirects)


def _fetch(url: str, part: Path, timeout: float, progress: Progress | None) -> str | None:
    """One attempt: fetch (the rest of) ``url`` into ``part``. Returns _RANGE_REFUSED when the
    server answers a resume with 416, else None; raises _Retry, _OtherHost or DataError."""
    have, validator = _resumable(part, url)
    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if have:
        req.add_header("Range", f"bytes={have}-")
        req.add_header("If-Range", validator)
    try:
        resp = _OPENER.open(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            return _RANGE_REFUSED
        if exc.code in (404, 410, 401, 403):
            raise DataError(f"{url} answered HTTP {exc.code} ({exc.reason}); check the URL or "
                            "put the file in the data dir by hand") from None
        raise _Retry(f"HTTP {exc.code} {exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:  # URLError, refused, timeout, reset
        reason = getattr(exc, "reason", None) or exc
        raise _Retry(f"{reason}") from None
    with resp:
        _receive(resp, url, part, have, validator, progress)
    return None


def _receive(resp, url: str, part: Path, have: int, validator: str | None,
             progress: Progress | None) -> None:
    """Write the body of ``resp`` to ``part``: appended to a 206 that resumes at ``have`` for
    the same version of the file, else (200) from byte 0 with the new version recorded."""
    status = getattr(resp, "status", 200)
    length = resp.headers.get("Content-Length")
    if have and status == 206:
        if _content_range_start(resp.headers.get("Content-Range")) != have:
            _discard(part)
            raise _Retry("server resumed at the wrong offset; starting over")
        now = _validator(resp.headers)
        if now is not None and now != validator:  # a server that ignored If-Range
            _discard(part)
            raise _Retry("the file changed on the server; starting over")
        mode, done = "ab", have
    else:
        mode, done = "wb", 0  # 200: the server sent the whole file
    total = done + int(length) if length is not None else None
    if total is not None:  # a part about to be rewritten from byte 0 gives its room back
        reclaim = part.stat().st_size if mode == "wb" and part.exists() else 0
        _check_room(part, total - done, reclaim)
    try:
        fh = open(part, mode)  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise DataError(f"cannot write {part} ({exc.strerror}); pass --data-dir or set "
                        "BVAE_DATA_DIR to a writable folder") from None
    with fh:
        if mode == "wb":
            # After truncating, before the first byte: the record always describes the part.
            _write_meta(part, url, _validator(resp.headers))
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


def _check_room(part: Path, coming: int, reclaim: int) -> None:
    """A one-line DataError, before a byte is written, when the disk cannot hold the ``coming``
    bytes the server announced (MPI3D's npz is 12 GB: better said now than as ENOSPC later)."""
    try:
        free = shutil.disk_usage(part.parent).free
    except OSError:
        return  # cannot tell: a write that runs out says so itself
    if free + reclaim < coming:
        raise DataError(f"not enough disk for the download in {part.parent}: it needs "
                        f"{coming / 1e9:.2f} GB, {free / 1e9:.2f} GB are free; free space or "
                        "pass --data-dir (or set BVAE_DATA_DIR) to a larger disk")


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
    if spec.extra.get("variant"):  # a dSprites variant: the painting, or its base's file
        from bvae_tui.datasets import dsprites_variants, scream

        if spec.extra["variant"] == "scream":
            return scream.download_scream(ensure_root(data_root(data_dir)),
                                          source_url(spec.name, url), download_file, progress,
                                          **kwargs)
        dsprites_variants.check_downloadable(spec, FILES)
        return download_dataset(spec.extra["base"], data_dir, progress, url, **kwargs)
    if spec.name in SOURCES:  # SmallNORB (six files), Cars3D, MPI3D: datasets.realsets_files
        return _download_sources(spec.name, ensure_root(data_root(data_dir)),
                                 source_url(spec.name, url), progress, **kwargs)
    if spec.name not in FILES:
        raise DataError(f"dataset '{spec.name}' has nothing to download; choose one of: "
                        f"{', '.join([*FILES, *SOURCES])}")
    root = ensure_root(data_root(data_dir))
    fname, kind, expected = FILES[spec.name]
    dest = root / fname
    if dest.is_file():
        return dest
    return download_file(source_url(spec.name, url), dest, check=(kind, expected),
                         progress=progress, hint=f"{spec.source_hint} {root}", **kwargs)


def _download_sources(name: str, root: Path, url: str, progress: Progress | None,
                      **kwargs) -> Path:
    """Fetch each missing file of ``name`` (``url``: the file, or the folder of several: a
    mirror's too), resumable and checksummed one by one; return the first (the main one)."""
    files = SOURCES[name]
    hint = f"{get_spec(name).source_hint} {root}"
    for source in files:
        dest = root / source.name
        if not dest.is_file():
            download_file(file_url(url, source, len(files) > 1), dest,
                          check=(source.kind, source.digest), progress=progress, hint=hint,
                          **kwargs)
    return root / files[0].name
