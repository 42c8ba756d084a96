"""JSON files of a run directory: atomic writes, tolerant reads, growing JSON-lines files.

Nothing here knows what the files mean (that is :mod:`bvae_tui.engine.runs.records`) or where
they are (that is :mod:`bvae_tui.engine.runs.store`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bvae_tui.engine.atomic import atomic_path

T = TypeVar("T")
StatKey = tuple[int, int, int]


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


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when it is missing or unreadable."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


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
    every long run every second would not scale. A torn last line (mid-write) is skipped.
    """
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = size
            while start > 0:
                start = max(0, start - chunk)
                fh.seek(start)
                data = fh.read(size - start)
                lines = data.split(b"\n")
                complete = lines[:-1]  # after the last newline: torn or empty
                if start > 0:
                    complete = complete[1:]  # the first piece may be a partial line
                for line in reversed(complete):
                    try:
                        row = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(row, dict):
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
    reading restarts.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0
        self._inode: int | None = None

    def read_new(self) -> list[dict[str, Any]]:
        try:
            st = os.stat(self.path)
        except OSError:
            return []
        if st.st_ino != self._inode or st.st_size < self.offset:
            self._inode, self.offset = st.st_ino, 0
        if st.st_size == self.offset:
            return []
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except OSError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        rows = []
        for line in chunk[: end + 1].splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
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
