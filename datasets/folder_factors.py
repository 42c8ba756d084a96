"""Ground-truth factors of a ``folder:PATH`` dataset, from a ``factors.csv`` beside its images.

The file's header names the columns: first the image's file name (its path relative to the
folder, ``/``-separated), then one column per factor. Each row gives one image's class of each
factor as a whole number. The integers a factor uses need not start at 0 or be contiguous (an
azimuth may be written 0, 15, 30, ...): the cache stores them as factor *values* and numbers the
distinct ones in increasing order as the factor's *classes* 0..K-1, which is what the metrics
and the explore view index.

What is refused, each in one line: a header with fewer than two columns or a repeated or empty
name, a row with the wrong number of cells, a class that is not a whole number, an image with no
row (missing), a row naming no image (extra), a file named twice, and two images with the same
classes (the metrics fix factor classes and look images up by them: one image per combination).

A grid that is not complete (some combinations have no image) is allowed, with a stated warning:
the metrics then draw only existing combinations (engine/analysis/metrics/ground_truth.py), and
the rows stay in file order, looked up through :class:`ClassIndex` instead of grid strides.
"""

from __future__ import annotations

import csv
import io
import math
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bvae_tui.datasets.errors import DataError

FACTORS_FILE = "factors.csv"
MAX_CSV_BYTES = 64 << 20  # a row per image: far above any folder that fits the cache anyway
_MAX_KEY = 1 << 62  # combined class keys stay in int64


def csv_path(folder: Path) -> Path:
    return folder / FACTORS_FILE


def has_factors_file(folder: Path) -> bool:
    """Whether ``folder`` has a factors.csv (of any kind: one that is not a regular file is
    refused when read, never silently taken for a folder without factors)."""
    return os.path.lexists(csv_path(folder))


def _read_text(path: Path, limit: int | None = None) -> str:
    """The csv's text, read only from a regular file (a FIFO there must not hang a listing),
    capped; ``limit``: stop after that many bytes (the header is all a listing needs)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror}); check its permissions") from None
    # Checked before wrapping the descriptor: fdopen itself refuses a directory (with an
    # IsADirectoryError, which would escape as a traceback).
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DataError(f"{path} is not a regular file; make factors.csv a plain CSV file")
    with os.fdopen(fd, "rb") as fh:
        cap = MAX_CSV_BYTES if limit is None else limit
        data = fh.read(cap + 1)
    if limit is None and len(data) > MAX_CSV_BYTES:
        raise DataError(f"{path} is larger than {MAX_CSV_BYTES >> 20} MiB; one row per image "
                        "should be far smaller: check that it is the factors table")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        if limit is not None:  # the cut may split a character: the header is what matters
            return data.decode("utf-8-sig", errors="ignore")
        raise DataError(f"{path} is not UTF-8 text; save it as a UTF-8 CSV") from None


def _check_header(path: Path, header: Sequence[str]) -> tuple[str, ...]:
    names = tuple(h.strip() for h in header)
    if len(names) < 2:
        raise DataError(f"{path}: the header needs the file name column, then one column per "
                        "factor (e.g. file,shape,azimuth)")
    factors = names[1:]
    if any(not n for n in factors):
        raise DataError(f"{path}: a factor column has no name in the header; name every column")
    seen = set()
    for n in factors:
        if n.lower() in seen:
            raise DataError(f"{path}: factor {n!r} is named twice in the header; give each "
                            "column its own name")
        seen.add(n.lower())
    return factors


def factor_names(folder: Path) -> tuple[str, ...]:
    """The factor names of ``folder``'s factors.csv header; () when it has none (cheap: reads
    the first line only)."""
    if not has_factors_file(folder):
        return ()
    path = csv_path(folder)
    text = _read_text(path, limit=16 << 10)
    first = next(csv.reader(io.StringIO(text.split("\n", 1)[0])), [])
    return _check_header(path, first)


@dataclass
class FactorTable:
    """What the csv says, checked against the folder's images (one row per image, in order)."""

    names: tuple[str, ...]
    classes: np.ndarray  # int64 (N, F): 0..K-1 per factor
    values: np.ndarray  # float64 (N, F): the integers as written
    sizes: tuple[int, ...]
    levels: list[list[int]]  # per factor, its distinct integers in class order
    files: list[str]  # each row's image, relative to the folder
    path: Path  # the csv, for messages

    @property
    def combinations(self) -> int:
        return len(self.classes)

    @property
    def grid_size(self) -> int:
        return math.prod(self.sizes)

    @property
    def complete(self) -> bool:
        return self.combinations == self.grid_size

    def warning(self, folder: Path) -> str | None:
        if self.complete:
            return None
        return (f"the factor grid of {folder} is not complete: {self.combinations:,} of its "
                f"{self.grid_size:,} combinations ({' x '.join(map(str, self.sizes))}) have an "
                "image; the metrics draw only existing combinations (BetaVAE and FactorVAE say "
                "so in their results)")

    def meta(self, folder: Path) -> dict:
        warning = self.warning(folder)
        return {
            "factor_names": list(self.names), "factor_sizes": list(self.sizes),
            "factor_values": self.levels, "factors_file": FACTORS_FILE,
            # Rows are in file order, not grid order: the loader looks classes up by key.
            "row_order": "files",
            "grid": {"complete": self.complete, "combinations": self.combinations,
                     "size": self.grid_size},
            "warnings": [warning] if warning else [],
        }


def _relative(path: Path, folder: Path) -> str:
    return path.relative_to(folder).as_posix()


def _normal(name: str) -> str:
    name = name.strip().replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def read_table(folder: Path, files: Sequence[Path]) -> FactorTable:
    """Parse ``folder``'s factors.csv and order it as ``files`` (the images to be decoded)."""
    path = csv_path(folder)
    rows = list(csv.reader(io.StringIO(_read_text(path))))
    rows = [r for r in rows if any(c.strip() for c in r)]  # blank lines are not rows
    if not rows:
        raise DataError(f"{path} is empty; write a header (file,factor1,...) and a row per image")
    names = _check_header(path, rows[0])
    width = len(names) + 1
    by_file: dict[str, tuple[int, list[int]]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != width:
            raise DataError(f"{path} line {line}: {len(row)} cells, the header has {width}; "
                            "give the file name and one class per factor")
        name = _normal(row[0])
        ints = []
        for factor, cell in zip(names, row[1:], strict=True):
            text = cell.strip()
            try:
                ints.append(int(text))
            except ValueError:
                raise DataError(f"{path} line {line}: {factor} is {text!r}, not a whole number; "
                                "classes are integers (number the levels 0, 1, 2, ...)") from None
        if name in by_file:
            raise DataError(f"{path} line {line}: {name} has a row already (line "
                            f"{by_file[name][0]}); give each image one row")
        by_file[name] = (line, ints)
    wanted = [_relative(f, folder) for f in files]
    missing = [w for w in wanted if w not in by_file]
    if missing:
        raise DataError(f"{path}: {len(missing):,} image(s) have no row, e.g. {missing[0]}; add "
                        "a row for every image or move the image out of the folder")
    present = set(wanted)
    extra = [n for n in by_file if n not in present]
    if extra:
        raise DataError(f"{path}: {len(extra):,} row(s) name no image in the folder, e.g. "
                        f"{extra[0]} (line {by_file[extra[0]][0]}); remove those rows or add "
                        "the images")
    given = np.array([by_file[w][1] for w in wanted], dtype=np.int64).reshape(len(wanted),
                                                                              len(names))
    return _coded(path, names, given, wanted)


def _coded(path: Path, names: tuple[str, ...], given: np.ndarray,
           files: Sequence[str]) -> FactorTable:
    levels, classes = [], np.empty_like(given)
    for k in range(given.shape[1]):
        uniq, inverse = np.unique(given[:, k], return_inverse=True)
        levels.append([int(v) for v in uniq])
        classes[:, k] = inverse.reshape(-1)
    sizes = tuple(len(v) for v in levels)
    if math.prod(sizes) >= _MAX_KEY:
        raise DataError(f"{path}: the factors span {math.prod(sizes):.3g} combinations, too many "
                        "to index; use fewer factors or fewer levels")
    keys = ClassIndex.keys_of(classes, sizes)
    order = np.argsort(keys, kind="stable")
    same = np.flatnonzero(keys[order][1:] == keys[order][:-1])
    if same.size:
        a, b = files[order[same[0]]], files[order[same[0] + 1]]
        raise DataError(f"{path}: {a} and {b} have the same classes of every factor; each image "
                        "needs its own combination (add a factor column that tells them apart)")
    return FactorTable(names, classes, given.astype(np.float64), sizes, levels, list(files),
                       path)


class ClassIndex:
    """Row of each factor-class vector for a dataset whose rows are not in grid order, or whose
    grid is not complete: the rows' combined class keys, sorted, searched."""

    def __init__(self, classes: np.ndarray, sizes: Sequence[int]):
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.classes = classes
        keys = self.keys_of(np.asarray(classes, dtype=np.int64), self.sizes)
        self._order = np.argsort(keys, kind="stable")
        self._sorted = keys[self._order]

    @staticmethod
    def keys_of(classes: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
        sizes = np.asarray(sizes, dtype=np.int64)
        strides = np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)
        return np.asarray(classes, dtype=np.int64) @ strides

    def index_of(self, classes: np.ndarray) -> np.ndarray:
        """Rows of ``classes`` (M, F); a DataError names the first combination with no image."""
        keys = self.keys_of(classes, self.sizes)
        pos = np.searchsorted(self._sorted, keys)
        pos = np.minimum(pos, len(self._sorted) - 1)
        found = self._sorted[pos] == keys
        if not found.all():
            first = [int(c) for c in classes[int(np.flatnonzero(~found)[0])]]
            raise DataError(f"no image has the factor classes {first}: the factor grid is not "
                            "complete; pick an existing combination")
        return self._order[pos]

    def nearest(self, classes: Sequence[int], keep: Sequence[int]) -> int:
        """The row that has ``classes`` at the factors ``keep`` and agrees with ``classes`` on
        most of the others (the first such row); a DataError when none has the kept classes."""
        want = np.asarray(classes, dtype=np.int64)
        table = np.asarray(self.classes, dtype=np.int64)
        keep = [int(k) for k in keep]
        ok = np.all(table[:, keep] == want[keep], axis=1) if keep else np.ones(len(table), bool)
        rows = np.flatnonzero(ok)
        if rows.size == 0:
            asked = ", ".join(f"factor {k} class {int(want[k])}" for k in keep)
            raise DataError(f"no image has the factor classes asked ({asked}): the factor grid "
                            "is not complete; pick an existing combination")
        agree = (table[rows] == want).sum(axis=1)
        return int(rows[int(np.argmax(agree))])


def kept_rows(table: FactorTable, kept: Sequence[bool]) -> FactorTable:
    """The table of the images that decoded (a skipped image loses its row; its levels are
    numbered again, so a level no image has left does not count as a class)."""
    keep = np.asarray(kept, dtype=bool)
    if keep.all():
        return table
    files = [f for f, k in zip(table.files, keep, strict=True) if k]
    return _coded(table.path, table.names, table.values[keep].astype(np.int64), files)


def write_factors(tmp: Path, table: FactorTable, kept: Sequence[bool], folder: Path) -> dict:
    """Write the factor tables of the decoded images into the cache being built; their
    meta.json keys."""
    from bvae_tui.datasets import cache

    table = kept_rows(table, kept)
    cache.save_array(tmp / cache.CLASSES, table.classes)
    cache.save_array(tmp / cache.VALUES, table.values)
    return table.meta(folder)
