"""Is a run's worker still alive? Process start times tell a live worker from a recycled pid."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None if it is gone.

    Comparing it with the value the worker recorded tells a live worker from a recycled pid.
    -1: the process exists but its start time cannot be read (no /proc, e.g. not Linux).
    """
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None if not _pid_exists(pid) else -1
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 overall: starttime
    except (IndexError, ValueError):
        return -1


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_alive(pid: int | None, start: int | None) -> bool:
    """Is the process that wrote this status still the one running under ``pid``?"""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False  # missing, or a hand-edited / corrupt status.json
    now = process_start_time(pid)
    if now is None:
        return False
    if start in (None, -1) or now == -1:  # no /proc (not Linux): trust the pid
        return True
    if now != start:
        return False
    # A zombie (exited, not yet reaped by its parent) is not a live worker.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
        return stat[stat.rfind(")") + 2 :].split()[0] != "Z"
    except OSError:
        return False


def on_stop_signals(request_stop: Callable[[int, Any], None]) -> None:
    """A detached process (worker, scheduler) stops cleanly on SIGTERM or SIGINT, and ignores
    SIGHUP: the terminal or SSH session it was started from may close under it."""
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
