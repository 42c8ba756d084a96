"""What a run, a sweep or a spec may name, and how the tool opens the files of a run directory.

Runs dirs are shared: on a lab server or a cluster's filesystem several people's runs live side
by side, and a sweep.json, a config.json or a whole run directory may have been written (or
copied in) by somebody else. So nothing read from a run directory is trusted to name a path:

- an id (of a run or a sweep, from the command line or from sweep.json) is a single, plain path
  component (:data:`ID_PATTERN`), so joined onto a root it is a direct child of that root;
- a directory the tool changes (deletes, trains, writes into) is a real directory, not a link
  out of the root, and it holds the record it claims to be (:func:`check_record_dir`);
- files are read only when they are regular files (a FIFO would block every reader) up to a
  size cap, and written without following links (:func:`open_append`, :func:`real_subdir`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from pathlib import Path

from bvae_tui.engine.errors import RunError

# What run and sweep ids look like: the launcher makes them from a time stamp and a slug, so
# they never hold a path separator, never start with a dot, and never contain '..'.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
# Writers never follow a link at the last component of a run file's path.
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def valid_id(value: object) -> bool:
    """Whether ``value`` is an id the tool could have made (a direct child's name, no '..')."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None \
        and ".." not in value


def is_link(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def regular_file(path: Path) -> bool:
    """A regular file itself (not a link to one, a FIFO, a socket or a device)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def check_record_dir(path: Path, record_file: str | tuple[str, ...], kind: str,
                     error: type[Exception] = RunError) -> None:
    """``error`` with one line unless ``path`` is a real directory (not a link) holding one of
    ``record_file`` as a regular file: what a directory must be before the tool changes it."""
    records = (record_file,) if isinstance(record_file, str) else record_file
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        raise error(f"{kind} {path.name} does not exist (deleted?)") from None
    if stat.S_ISLNK(mode):
        raise error(f"{path} is a symbolic link, not a {kind} directory; nothing was changed; "
                    f"remove the link itself with 'rm {path}'")
    if not stat.S_ISDIR(mode):
        raise error(f"{path} is not a directory, so not a {kind}; nothing was changed")
    if not any(regular_file(path / name) for name in records):
        raise error(f"{path} holds no {records[0]} of its own, so it is not a {kind}; "
                    "nothing was changed")


def real_subdir(path: Path) -> Path:
    """Create ``path`` (checkpoints/, previews/, exports/ of a run) if needed and make sure it
    is a real directory: a link planted there would make the tool write outside the run."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(parents=True)
    if is_link(path) or not path.is_dir():
        raise RunError(f"{path} is a link or not a directory; the tool writes only into real "
                       f"directories of a run; remove it ('rm {path}') and try again")
    return path


def open_append(path: Path, text: bool = False):
    """``path`` opened for appending (bytes, or ``text``), never through a link, and only when
    it is a regular file that has no other name (a hard link would make an append change
    another file)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | NOFOLLOW | os.O_NONBLOCK,
                     0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RunError(f"{path} is a symbolic link; the tool does not write through links; "
                           f"remove it ('rm {path}') and try again") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        os.close(fd)
        raise RunError(f"{path} is not a plain file of its own (a FIFO, a device or a hard "
                       f"link); remove it ('rm {path}') and try again")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "a" if text else "ab")
