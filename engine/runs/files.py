"""JSON files of a run directory: atomic writes, tolerant reads, growing JSON-lines files.

Nothing here knows what the files mean (that is :mod:`bvae_tui.engine.runs.records`) or where
they are (that is :mod:`bvae_tui.engine.runs.store`).
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bvae_tui.engine.atomic import atomic_path

T = TypeVar("T")
StatKey = tuple[int, int, int]

# Bounds on what a reader takes from a run file (somebody else's runs dir may hold anything):
MAX_JSON_BYTES = 32 * 2**20  # a config.json, status.json or eval.json is kilobytes
MAX_JSON_DEPTH = 64  # the records nest a few levels; deeper is damage or malice
MAX_LINE_BYTES = 2**20  # one metrics or probe row (many latents: tens of kilobytes)
MAX_READ_BYTES = 16 * 2**20  # what one poll of a growing file reads at most


NONFINITE_KEY = "nonfinite"  # where a JSON object lists the values that were NaN or infinite


def finite(data: Any, where: str = "") -> tuple[Any, list[str]]:
    """``data`` with every NaN / infinite float replaced by None, and the paths replaced (e.g.
    ``details.mig.gaps[2]``): strict JSON readers (JavaScript, jq) reject those values."""
    if isinstance(data, float) and not math.isfinite(data):
        return None, [where or "value"]
    if isinstance(data, dict):
        out, bad = {}, []
        for key, value in data.items():
            out[key], found = finite(value, f"{where}.{key}" if where else str(key))
            bad += found
        return out, bad
    if isinstance(data, (list, tuple)):
        items = [finite(value, f"{where}[{i}]") for i, value in enumerate(data)]
        return [v for v, _ in items], [p for _, found in items for p in found]
    return data, []


def strict_json(data: Any, **dump_args: Any) -> str:
    """JSON text with no NaN or Infinity: such values become null, and an object lists them
    under ``nonfinite``."""
    clean, bad = finite(data)
    if bad and isinstance(clean, dict):
        clean[NONFINITE_KEY] = bad
    return json.dumps(clean, allow_nan=False, **dump_args)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write strict JSON so that readers see either the old or the new file, even after a
    crash."""
    text = strict_json(data, indent=2, sort_keys=True)
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        fh.write(text + "\n")


def open_regular(path: Path):
    """``path`` opened for reading bytes when it is a regular file, else None.

    A FIFO, a socket or a device file in place of a run file would block (or feed endlessly)
    every reader, hiding every run in the table: they are never opened as files. The file is
    opened without blocking and checked again on the open descriptor, so it cannot be swapped
    for a FIFO in between.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def shallow(data: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``data`` nests at most ``limit`` lists and objects deep (looked at without
    recursion, so a hostile file cannot make the check itself overflow the stack)."""
    stack = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children
                         if isinstance(child, (dict, list)))
    return True


def parse_json(text: bytes | str) -> Any:
    """JSON text as Python data; ValueError when it is not JSON or nests too deep."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None
    if not shallow(data):
        raise ValueError("JSON nested too deep")
    return data


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when it is missing, unreadable, not a regular file,
    larger than :data:`MAX_JSON_BYTES` or nested deeper than :data:`MAX_JSON_DEPTH`."""
    fh = open_regular(path)
    if fh is None:
        return None
    try:
        with fh:
            text = fh.read(MAX_JSON_BYTES + 1)
        if len(text) > MAX_JSON_BYTES:
            return None
        data = parse_json(text)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _json_row(line: bytes) -> dict[str, Any] | None:
    """One JSON-lines row as an object; None for anything else (torn, too long, too deep)."""
    if len(line) > MAX_LINE_BYTES:
        return None
    try:
        row = parse_json(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) else None


def stat_key(path: Path) -> StatKey | None:
    """What changes whenever the file does (also when it is replaced); None when it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def last_json_line(path: Path, chunk: int = 65_536) -> dict[str, Any] | None:
    """The last complete, valid object of a JSON-lines file, reading only its end.

    The runs table and `bvae runs` need one row per run; parsing the whole metrics file of
    every long run every second would not scale. A torn last line (mid-write) is skipped, and
    so is a line longer than :data:`MAX_LINE_BYTES`: no more than a few of those are read.
    """
    fh = open_regular(path)
    if fh is None:
        return None
    try:
        with fh:
            size = fh.seek(0, os.SEEK_END)
            start = size
            while start > 0 and size - start < 4 * MAX_LINE_BYTES:
                start = max(0, start - chunk)
                fh.seek(start)
                data = fh.read(size - start)
                lines = data.split(b"\n")
                complete = lines[:-1]  # after the last newline: torn or empty
                if start > 0:
                    complete = complete[1:]  # the first piece may be a partial line
                for line in reversed(complete):
                    row = _json_row(line)
                    if row is not None:
                        return row
                chunk *= 4  # very long rows (many latents): look further back
    except OSError:
        return None
    return None


class JsonLinesTail:
    """Incremental reader of a growing JSON-lines file.

    Each :meth:`read_new` returns only the objects completed since the last call. A last line
    without its newline is held back until it is complete (the writer may be mid-write); a line
    that is complete but not a JSON object is skipped. If the file shrinks or is replaced,
    reading restarts. One call reads at most ``max_read`` bytes (the rest waits for the next
    call), and a line longer than :data:`MAX_LINE_BYTES` is skipped without being held whole.
    """

    def __init__(self, path: Path, max_read: int = MAX_READ_BYTES):
        self.path = Path(path)
        self.offset = 0
        self.max_read = max(max_read, MAX_LINE_BYTES + 1)
        self._inode: int | None = None
        self._skipping = False  # inside a line too long to keep: drop up to its newline

    def read_new(self) -> list[dict[str, Any]]:
        try:
            st = os.stat(self.path)
        except OSError:
            return []
        if st.st_ino != self._inode or st.st_size < self.offset:
            self._inode, self.offset, self._skipping = st.st_ino, 0, False
        if st.st_size == self.offset:
            return []
        fh = open_regular(self.path)
        if fh is None:
            return []
        try:
            with fh:
                fh.seek(self.offset)
                chunk = fh.read(self.max_read)
        except OSError:
            return []
        if self._skipping:
            start = chunk.find(b"\n")
            if start < 0:
                self.offset += len(chunk)
                return []
            self.offset += start + 1
            chunk, self._skipping = chunk[start + 1:], False
        end = chunk.rfind(b"\n")
        if end < 0:
            if len(chunk) > MAX_LINE_BYTES:  # a line this long is never a row: skip it
                self.offset += len(chunk)
                self._skipping = True
            return []
        self.offset += end + 1
        rows = []
        for line in chunk[: end + 1].splitlines():
            row = _json_row(line)
            if row is not None:
                rows.append(row)
        return rows


class FileCache:
    """Parsed files, parsed again only when they change (pollers refresh every second)."""

    def __init__(self) -> None:
        self._hits: dict[Path, tuple[StatKey | None, Any]] = {}

    def get(self, path: Path, parse: Callable[[Path], T]) -> T:
        key = stat_key(path)
        hit = self._hits.get(path)
        if hit is not None and hit[0] == key:
            return hit[1]
        value = parse(path)
        self._hits[path] = (key, value)
        return value
