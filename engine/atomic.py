"""Atomic file replacement: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path`` (same suffix, so writers that go by it still work).

    On success the temp file is fsynced and renamed over ``path``; on any error it is removed and
    ``path`` is left as it was, so a crash never corrupts a checkpoint or a status file.
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
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
