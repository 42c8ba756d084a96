"""A sweep's members as a grid, for `bvae sweep show` and the TUI's sweep screen.

Columns are the values of the second swept field (e.g. seeds), rows the combinations of the
others (the first swept field, then any further ones); a sweep of one field has one column.
Each cell is a member's :class:`~bvae_tui.engine.runs.records.RunSummary`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from bvae_tui.engine.config import field_info
from bvae_tui.engine.runs.files import FileCache
from bvae_tui.engine.runs.records import RunSummary
from bvae_tui.engine.runs.store import Run
from bvae_tui.engine.runs.sweeps.store import Sweep

SCORES = ("loss", "betavae", "factorvae", "mig")


@dataclass
class SweepGrid:
    row_axes: list[str]
    col_axis: str | None
    rows: list[tuple[Any, ...]]  # values of row_axes
    cols: list[Any]  # values of col_axis ([None] when there is none)
    cells: dict[tuple[int, int], RunSummary] = field(default_factory=dict)
    missing: dict[tuple[int, int], str] = field(default_factory=dict)  # run id of a gone member

    def row_label(self, i: int) -> str:
        return " ".join(f"{a}={_show(a, v)}" for a, v in zip(self.row_axes, self.rows[i],
                                                              strict=True))

    def col_label(self, j: int) -> str:
        if self.col_axis is None:
            return ""
        return f"{self.col_axis}={_show(self.col_axis, self.cols[j])}"

    def members(self) -> list[RunSummary]:
        return [self.cells[k] for k in sorted(self.cells)]


def _show(name: str, value: Any) -> str:
    return field_info(name).show(value)


def sweep_grid(sweep: Sweep, caches: dict[str, FileCache] | None = None) -> SweepGrid:
    """The sweep's members in their grid cells (``caches``: a poller's, per run id)."""
    record = sweep.record()
    axes = list(record.axes)
    col_axis = axes[1] if len(axes) > 1 else None
    row_axes = [a for a in axes if a != col_axis]
    rows = list(itertools.product(*(record.values[a] for a in row_axes)))
    cols = list(record.values[col_axis]) if col_axis else [None]
    grid = SweepGrid(row_axes, col_axis, rows, cols)
    row_index = {r: i for i, r in enumerate(rows)}
    col_index = {c: j for j, c in enumerate(cols)}
    for run_id, swept in zip(record.members, sweep.member_values(), strict=False):
        key = (row_index[tuple(swept[a] for a in row_axes)],
               col_index[swept[col_axis]] if col_axis else 0)
        run = Run(sweep.runs_root / run_id)
        if not run.path.is_dir():
            grid.missing[key] = run_id
            continue
        cache = caches.setdefault(run_id, FileCache()) if caches is not None else None
        grid.cells[key] = run.summary(cache)
    return grid


def score(member: RunSummary, name: str) -> float | None:
    """A member's value of ``name``: the last loss, or an eval score."""
    value = member.loss if name == "loss" else member.scores.get(name)
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def default_score(grid: SweepGrid) -> str:
    """The first metric some member has been scored on, else the loss."""
    for name in SCORES[1:]:
        if any(name in m.scores for m in grid.cells.values()):
            return name
    return "loss"
