"""One writer per run directory: an exclusive ``flock`` on ``<run>/.lock``, held for life.

Whoever trains a run (a detached worker, a foreground `bvae train` / `bvae resume`, a sweep
scheduler's member) holds the lock from before it writes anything until it exits; the kernel
drops it when the process dies, ``kill -9`` included, so a crash never leaves a run locked. A
second writer fails at once with the pid of the holder, which is written into the lock file.

A launcher takes the lock, starts the worker with the open descriptor (``pass_fds`` and
``--lock-fd N``) and closes its own copy: the lock passes to the worker without a moment in which
another launcher could take it. `bvae stop` signals the holder; `bvae runs rm` deletes only a run
it could lock. Other code asks :func:`lock_holder` (e.g. to adopt live workers).

The lock file is never removed (that would let two writers lock two different files); it goes
with its directory. ``flock`` works on local filesystems and on NFS (Linux emulates it there with
byte-range locks); a filesystem without locks is an error, not a silent pass.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from bvae_tui.engine.errors import RunError
from bvae_tui.engine.runs.files import open_regular
from bvae_tui.engine.runs.guard import NOFOLLOW
from bvae_tui.engine.runs.records import LOCK_FILE

HOLDER_WAIT_S = 1.0  # a new holder writes its pid within microseconds of locking
PEEK_GRACE_S = 0.5  # a writer's retries: a reader peeks, a holder that wrote its end exits
MAX_LOCK_BYTES = 4096  # what a holder writes is a pid and a host name


def _run_dir(run: Any) -> Path:
    """The directory of a :class:`~bvae_tui.engine.runs.store.Run` or of a path."""
    return Path(getattr(run, "path", run))


def write_error(path: Path, exc: OSError, what: str = "write to",
                fix: str = "copy the run to a writable runs dir (--runs-dir) to work on it"
                ) -> RunError:
    """A one-line error for a run directory this process may not change."""
    if exc.errno == errno.EROFS:
        why = "read-only file system"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        why = "permission denied; it belongs to another user"
    else:
        why = exc.strerror or type(exc).__name__
    return RunError(f"cannot {what} run {path.name} ({why}); nothing was changed; {fix}")


def check_writable(run: Any, what: str = "write to", also_parent: bool = False,
                   fix: str | None = None) -> None:
    """A one-line :class:`RunError` unless this process can create files in the run directory
    (and, ``also_parent``, in the runs dir holding it). It tries, with an unnamed temp file:
    permission bits alone say nothing about read-only mounts, ACLs or root."""
    path = _run_dir(run)
    for folder in (path, path.parent) if also_parent else (path,):
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise write_error(path, exc, what, *([fix] if fix else [])) from None


class RunLocked(RunError):
    """The run is locked by another writer; ``pid`` is the holder (0 if it did not say)."""

    def __init__(self, path: Path, pid: int, host: str | None):
        where = f" on {host}" if host and host != socket.gethostname() else ""
        by = f"pid {pid}{where}" if pid else "another process"
        super().__init__(f"run {path.name} is being trained by {by}; wait for it to end, or "
                         f"stop it with 'bvae stop {path.name}'")
        self.pid = pid


class RunLock:
    """The exclusive lock on one run directory. ``acquire()`` or ``adopt(fd)``, then hold it
    (it is released when :meth:`release` closes it, or when the process exits)."""

    FILE = LOCK_FILE  # a subclass locks another file of the run (a detached evaluation's)

    def __init__(self, run: Any):
        self.path = _run_dir(run)
        self.fd: int | None = None

    @property
    def lock_path(self) -> Path:
        return self.path / self.FILE

    def acquire(self) -> RunLock:
        """Take the lock without waiting; :class:`RunLocked` naming the holder if it is taken,
        a one-line :class:`RunError` if the directory is gone or cannot be written."""
        if not self.path.is_dir():
            raise RunError(f"run {self.path.name} does not exist (deleted?); 'bvae runs' "
                           "lists the runs")
        fd = _open_lock_file(self.lock_path)
        try:
            _flock_soon(fd)
        except OSError as exc:
            os.close(fd)
            if _busy(exc):
                raise RunLocked(self.path, *_read_holder(self.lock_path)) from None
            raise RunError(f"cannot lock run {self.path.name} ({exc.strerror}); its file "
                           "system does not support locks") from None
        self.fd = fd
        try:
            self._check_same_file()
            self.set_holder(os.getpid())
        except BaseException:
            self.release()
            raise
        return self

    def adopt(self, fd: int) -> RunLock:
        """Hold the lock through ``fd``, inherited from the launcher that took it."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours already: a no-op, else taken
        except OSError as exc:
            if _busy(exc):
                raise RunLocked(self.path, *_read_holder(self.lock_path)) from None
            raise RunError(f"no lock descriptor {fd} for run {self.path.name} "
                           f"({exc.strerror})") from None
        self.fd = fd
        self._check_same_file()
        self.set_holder(os.getpid())
        return self

    def _check_same_file(self) -> None:
        """A run deleted (renamed away) between our open and our lock is not ours to train."""
        assert self.fd is not None
        try:
            same = os.stat(self.lock_path).st_ino == os.fstat(self.fd).st_ino
        except OSError:
            same = False
        if not same:
            raise RunError(f"run {self.path.name} was deleted while starting")

    def set_holder(self, pid: int) -> None:
        """Name ``pid`` as the holder (a launcher names the worker it hands the lock to)."""
        assert self.fd is not None, "not holding the lock"
        data = f"{pid}\n{socket.gethostname()}\n".encode()
        try:
            os.pwrite(self.fd, data, 0)
            os.ftruncate(self.fd, len(data))
        except OSError as exc:  # the directory was writable a moment ago: a full disk, say
            raise write_error(self.path, exc) from None

    def release(self) -> None:
        """Close our descriptor. The lock ends when no process holds the descriptor any more,
        so a launcher that handed it to its worker can close its copy without unlocking it."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None

    def fileno(self) -> int:
        assert self.fd is not None, "not holding the lock"
        return self.fd

    def __enter__(self) -> RunLock:
        if self.fd is None:
            self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()



def _open_lock_file(path: Path) -> int:
    """The lock file opened for writing the holder into it, never through a link, and only
    when it is a plain file of the run's own: the holder's pid is written over its start, so
    a ``.lock`` that is a link (or a hard link to another file) would truncate its target."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | NOFOLLOW, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _not_a_lock(path) from None
        raise write_error(path.parent, exc) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1 or st.st_size > MAX_LOCK_BYTES:
        os.close(fd)
        raise _not_a_lock(path)
    os.set_blocking(fd, True)
    return fd


def _not_a_lock(path: Path) -> RunError:
    return RunError(f"run {path.parent.name}: its {path.name} is not a plain lock file (a link, "
                    f"a FIFO or a large file); nothing was changed; remove it with 'rm {path}' "
                    "if no process trains the run")


def _busy(exc: OSError) -> bool:
    return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


def _flock_soon(fd: int) -> None:
    """Lock ``fd`` exclusively, retrying for a moment: :func:`lock_holder` holds a shared lock
    for a few microseconds while it looks, and a holder that has written its final state
    releases the lock right after; neither must make a writer give up."""
    deadline = time.monotonic() + PEEK_GRACE_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if not _busy(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _read_holder(lock_path: Path) -> tuple[int, str | None]:
    """The pid and host written by the lock's holder; (0, None) when it has not written them
    yet. A lock just taken gets its pid written at once, so wait a moment for it."""
    deadline = time.monotonic() + HOLDER_WAIT_S
    while True:
        try:
            fh = open_regular(lock_path)
            if fh is None:
                return 0, None
            with fh:
                lines = fh.read(MAX_LOCK_BYTES).decode("utf-8", "replace").splitlines()
            pid = int(lines[0])
            return pid, (lines[1] if len(lines) > 1 else None)
        except (OSError, ValueError, IndexError):
            if time.monotonic() >= deadline:
                return 0, None
            time.sleep(0.01)


def lock_holder(run: Any, name: str = LOCK_FILE) -> int | None:
    """The pid holding ``run``'s lock (0: held, pid not written), or None when nobody holds it;
    ``name``: another lock file of the run (a detached evaluation's).

    Takes nothing and writes nothing: works on a read-only runs dir too.
    """
    path = _run_dir(run) / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None  # no lock file: no writer has ever locked it
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return _read_holder(path)[0] if _busy(exc) else None
    finally:
        os.close(fd)  # also drops the shared lock we may have taken
    return None
