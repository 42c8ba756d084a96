"""Atomic file replacement: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

# The process umask, read once at import (reading it means setting it, which is not thread-safe).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def share_like_open(path: str | os.PathLike, directory: bool = False) -> None:
    """Give a temp file or dir the mode a plain open()/mkdir() would have had.

    mkstemp/mkdtemp create private (0600/0700) entries; runs are meant to be readable by the
    other users of a shared GPU server, as any file they write would be under their umask.
    """
    os.chmod(path, (0o777 if directory else 0o666) & ~_UMASK)


_TEMP_NAME = re.compile(r"\.(.+)\.[a-z0-9_]{8}(\.[A-Za-z0-9]+)")


def temp_target(name: str) -> str | None:
    """The file a temp file of :func:`atomic_path` was to become (``.last.k3j_x9aq.pt`` ->
    ``last.pt``), or None for any other name. An interrupted write leaves one behind."""
    match = _TEMP_NAME.fullmatch(name)
    if match is None:
        return None
    stem, suffix = match.groups()
    return stem if suffix == ".tmp" else stem + suffix


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, keep: str | os.PathLike | None = None
                ) -> Iterator[Path]:
    """Yield a temp path beside ``path`` (same suffix, so writers that go by it still work).

    On success the temp file is fsynced and renamed over ``path``; on any error it is removed and
    ``path`` is left as it was, so a crash never corrupts a checkpoint or a status file.
    ``keep``: where the file being replaced is kept (e.g. the previous checkpoint), moved there
    only once the new one is complete and on disk.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix or ".tmp",
                               dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        share_like_open(tmp)
        if keep is not None and path.exists():
            _keep_old(path, Path(keep))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


KEEP_LINK_PREFIX = ".keep-"


def _keep_old(path: Path, keep: Path) -> None:
    """Make ``keep`` the current ``path`` file. A hard link keeps ``path`` in place throughout;
    where links are not supported it is moved, and readers that miss ``path`` use ``keep``."""
    link = keep.with_name(f"{KEEP_LINK_PREFIX}{keep.name}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(link)  # left by an interrupted earlier call
    try:
        os.link(path, link)
    except OSError:
        os.replace(path, keep)
        return
    os.replace(link, keep)
