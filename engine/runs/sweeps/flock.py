"""Advisory file locks (flock) for the sweep directory and the per-host slot table.

The kernel drops an flock when its holder dies, even by SIGKILL, so a crashed scheduler never
leaves a lock behind. A live holder can keep one for ever, though, and anyone who can read a lock
file can take a shared flock on it: so no wait here is without end. :func:`locked` polls with
``LOCK_NB`` until its timeout and then raises :class:`LockBusy`, naming the holder as well as
the kernel tells (``/proc/locks``) and the file's owner.

Lock files are opened with ``O_NOFOLLOW``: a lock file swapped for a symbolic link is refused,
never followed (a link would let whoever planted it create or truncate files as this user).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pwd
import time
from collections.abc import Iterator
from pathlib import Path

from bvae_tui.engine.errors import SweepError

LOCK_WAIT_S = 30.0  # the default wait: the sweep locks are held for milliseconds at a time
POLL_S = 0.05  # between tries while a lock is busy


class LockBusy(SweepError):
    """Another process held the lock for the whole wait. The message (built when shown, so a
    caller that tries often pays nothing for it) names the holder and the fix."""

    def __init__(self, path: Path, waited: float):
        super().__init__(str(path))
        self.path = Path(path)
        self.waited = waited

    @property
    def holder(self) -> str:
        return describe_holder(self.path)

    def __str__(self) -> str:
        return (f"lock file {self.path} is held by {self.holder} and was not released within "
                f"{self.waited:g} s; try again once it is free")


def _open_error(path: Path, exc: OSError) -> SweepError:
    if exc.errno == errno.ELOOP:
        return SweepError(f"lock file {path} is a symbolic link; a lock file must be a plain "
                          "file: remove the link (it is not followed)")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return SweepError(f"cannot open lock file {path} (permission denied; it belongs to "
                          f"{_owner(path)}); use a runs dir of your own (--runs-dir)")
    return SweepError(f"cannot open lock file {path} ({exc.strerror or exc})")


def _open(path: Path) -> int:
    """A read-write descriptor of the lock file (created if missing, never through a link)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        raise _open_error(Path(path), exc) from None


def _try(fd: int, path: Path) -> bool:
    """Take the exclusive lock without waiting: whether it was free."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:  # e.g. ENOLCK: a filesystem without locks must not pass silently
        raise SweepError(f"cannot lock {path} ({exc.strerror or exc}); put the runs dir on a "
                         "filesystem with file locks (--runs-dir)") from None
    return True


@contextlib.contextmanager
def locked(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing), waiting up to ``timeout``
    seconds (None: :data:`LOCK_WAIT_S`; 0: one try) for it; :class:`LockBusy` after that."""
    wait = LOCK_WAIT_S if timeout is None else max(0.0, timeout)
    deadline = time.monotonic() + wait
    fd = _open(path)
    try:
        while not _try(fd, path):
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockBusy(path, wait)
            time.sleep(min(POLL_S, left))
        yield
    finally:
        os.close(fd)  # closing drops the lock


def try_lock(path: Path) -> int | None:
    """Take an exclusive lock on ``path`` without waiting: the open descriptor (hold it for as
    long as the lock is needed; closing it drops the lock), or None when another holds it."""
    fd = _open(path)
    try:
        if _try(fd, path):
            return fd
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None


def is_locked(path: Path) -> bool:
    """Whether another process holds the lock on ``path`` right now."""
    if not os.path.lexists(path):
        return False
    fd = try_lock(path)
    if fd is None:
        return True
    os.close(fd)
    return False


# --------------------------------------------------------------------------------------------
# Who holds a lock


def _user(uid: int) -> str:
    try:
        return f"user {pwd.getpwuid(uid).pw_name}"
    except KeyError:
        return f"user id {uid}"


def _owner(path: Path) -> str:
    try:
        return _user(os.stat(path, follow_symlinks=False).st_uid)
    except OSError:
        return "an unknown user"


def holder_pids(path: Path) -> list[int]:
    """The pids the kernel lists as holding an flock on ``path`` (``/proc/locks``; empty where
    it cannot tell: another pid namespace, a filesystem whose device it names differently)."""
    try:
        info = os.stat(path, follow_symlinks=False)
        with open("/proc/locks") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    key = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    pids = []
    for line in lines:
        parts = line.split()
        # "1: FLOCK ADVISORY WRITE 4242 08:01:1234 0 EOF"; waiters read "1: -> FLOCK ...".
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == key and parts[4].isdigit():
            pid = int(parts[4])
            if pid > 0 and pid not in pids:
                pids.append(pid)
    return pids


def describe_holder(path: Path) -> str:
    """Who holds the lock, for a message: ``pid 4242 (user ann)``, else the file's owner."""
    pids = holder_pids(path)
    if not pids:
        return f"another process (the file belongs to {_owner(path)})"
    named = []
    for pid in pids[:3]:
        try:
            named.append(f"pid {pid} ({_user(os.stat(f'/proc/{pid}').st_uid)})")
        except OSError:
            named.append(f"pid {pid}")
    return ", ".join(named)
