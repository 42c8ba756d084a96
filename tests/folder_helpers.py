"""Image folders with a factors.csv, written by the tests (tiny PNGs of one colour each)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def colour_of(combo: Sequence[int]) -> tuple[int, int, int]:
    """A distinct flat colour per combination (so an image tells which row it is)."""
    a, b = int(combo[0]), int(combo[1]) if len(combo) > 1 else 0
    return (20 + (37 * a) % 200, 30 + (53 * b) % 200, 90)


def write_png(path: Path, rgb: tuple[int, int, int], side: int = 12) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((side, side, 3), rgb, dtype=np.uint8)).save(path)


def make_folder(folder: Path, levels: Sequence[Sequence[int]], names: Sequence[str] = ("a", "b"),
                drop: Sequence[tuple[int, ...]] = (), csv_rows: list[str] | None = None,
                extra_images: Sequence[str] = (),
                extra_rows: Sequence[str] = ()) -> dict[tuple[int, ...], str]:
    """Images for every combination of ``levels`` (the integers written in the csv) except
    ``drop``, named in an order unrelated to the grid; returns combination -> file name.
    ``csv_rows``: write these lines after the header instead of the true rows; ``extra_rows``:
    these after them."""
    combos = [c for c in itertools.product(*levels) if c not in set(drop)]
    order = np.random.RandomState(0).permutation(len(combos))
    files = {}
    for i, combo in zip(order, combos, strict=True):
        name = f"img_{i:03d}.png"
        write_png(folder / name, colour_of(combo))
        files[combo] = name
    for name in extra_images:
        write_png(folder / name, (1, 2, 3))
    lines = [",".join(["file", *names])]
    lines += csv_rows if csv_rows is not None else [
        ",".join([name, *map(str, combo)]) for combo, name in files.items()]
    lines += list(extra_rows)
    (folder / "factors.csv").write_text("\n".join(lines) + "\n")
    return files
