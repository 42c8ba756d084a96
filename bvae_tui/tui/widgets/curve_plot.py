"""A small line plot drawn with braille characters (2x4 dots a cell).

Our own rather than textual-plot: at 80x24 each plot gets a handful of rows, and a plot that
spends no space on axes frames, scales to thousands of points by drawing a min/max envelope per
dot column (numpy, no Python loop over points) and picks a log scale for losses that fall by
orders of magnitude reads better there. A series may bring its own x values (runs compared side
by side log at different iterations) and a band (min-max over a group's runs), drawn dim
beneath the lines. Plots that share an iteration axis (the monitor's curves and its MIG curve)
can be given the same x span, and marks on it (objective B's C passing whole values): a dim
dotted column through the plot and the mark's label on the x axis line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

# Dot bit for (x, y) within a braille cell, x in 0..1, y in 0..3.
_DOTS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
_LABEL_W = 7
SCALES = ("auto", "log", "linear")  # auto: log when the values span more than log_ratio


@dataclass(frozen=True)
class Series:
    label: str
    ys: Sequence[float]
    color: str
    xs: Sequence[float] | None = None  # None: the plot's shared x values
    lo: Sequence[float] | None = None  # a band from lo to hi at each x (e.g. min-max over runs)
    hi: Sequence[float] | None = None


def _fmt_tick(value: float) -> str:
    mag = abs(value)
    if mag == 0:
        return "0"
    if mag >= 1e5 or mag < 1e-2:
        return f"{value:.0e}"
    if mag >= 100:
        return f"{value:.0f}"
    if mag >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


class CurvePlot(Widget):
    """Line plot of one or more series over a shared x axis (iterations)."""

    DEFAULT_CSS = """
    CurvePlot { height: 6; min-height: 3; }
    """

    title: reactive[str] = reactive("")

    def __init__(self, title: str = "", *, name: str | None = None, id: str | None = None,
                 classes: str | None = None, values: bool = True) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.title = title
        self.values = values  # the title line names each series' last value
        self.log_ratio = 10.0  # auto: a log axis when the values span more than a decade
        self.scale = "auto"  # see SCALES; a screen's key cycles it
        self._xs: np.ndarray = np.zeros(0)
        self._series: list[Series] = []
        self.x_span: tuple[float, float] | None = None  # None: the data's own
        self.marks: list[tuple[float, str]] = []  # (x, label) on the x axis
        self.mark_style = "yellow"

    def set_data(self, xs: Sequence[float], series: list[Series]) -> None:
        self._xs = np.asarray(xs, dtype=np.float64)
        self._series = series
        self.refresh()

    def set_axis(self, span: tuple[float, float] | None,
                 marks: Sequence[tuple[float, str]] = ()) -> None:
        """Share an x span with other plots (None: the data's own) and mark x values on it."""
        self.x_span = span
        self.marks = list(marks)
        self.refresh()

    def set_scale(self, scale: str) -> None:
        if scale not in SCALES:
            raise ValueError(f"scale {scale!r}: one of {', '.join(SCALES)}")
        self.scale = scale
        self.refresh()

    @property
    def is_log(self) -> bool:
        """Whether the y axis is logarithmic now (with the data it holds)."""
        scale = self._scale()
        return bool(scale and scale[2])

    def _x_of(self, s: Series) -> np.ndarray:
        return self._xs if s.xs is None else np.asarray(s.xs, dtype=np.float64)

    def _x_range(self) -> tuple[float, float] | None:
        if self.x_span is not None and any(self._x_of(s).size for s in self._series):
            return self.x_span
        ends = [(float(x[0]), float(x[-1])) for x in map(self._x_of, self._series) if x.size]
        if not ends:
            return None
        return min(e[0] for e in ends), max(e[1] for e in ends)

    # Rendering --------------------------------------------------------------------------------
    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        out = Text(no_wrap=True, overflow="crop")
        out.append_text(self._title_line())
        if height < 3 or width < _LABEL_W + 4:
            return out
        rows = height - 2
        cols = width - _LABEL_W
        lines = self._plot(cols, rows)
        for line in lines:
            out.append("\n")
            out.append_text(line)
        out.append("\n")
        out.append_text(self._x_axis(cols))
        return out

    def _title_line(self) -> Text:
        text = Text(self.title, style="bold")
        if self.is_log:  # the ticks alone do not say that the axis is not linear
            text.append(" (log)", style="dim")
        for s in self._series if self.values else ():
            last = next((v for v in reversed(s.ys) if math.isfinite(v)), None)
            if last is None:
                continue
            text.append("  ")
            if len(self._series) > 1:
                text.append(f"{s.label} ", style=s.color)
            text.append(_fmt_tick(last), style=s.color)
        return text

    def _x_axis(self, cols: int) -> Text:
        text = Text(" " * _LABEL_W, style="dim")
        span = self._x_range()
        if span is None:
            return text
        lo, hi = f"{span[0]:.0f}", f"{span[1]:.0f}"
        line = list(lo + " " * max(1, cols - len(lo) - len(hi)) + hi)
        taken = [False] * len(line)
        for i in (*range(len(lo)), *range(len(line) - len(hi), len(line))):
            taken[i] = True
        placed = []
        for col, label in self.mark_columns(cols):
            # A label starts at its mark's column; it is left out where it would touch another.
            a, b = col, col + len(label)
            if b > len(line) or any(taken[max(0, a - 1):min(len(line), b + 1)]):
                continue
            line[a:b] = label
            taken[a:b] = [True] * len(label)
            placed.append((a, b))
        text.append("".join(line), style="dim")
        for a, b in placed:
            text.stylize(self.mark_style, _LABEL_W + a, _LABEL_W + b)
        return text

    def mark_columns(self, cols: int) -> list[tuple[int, str]]:
        """The plot column of each mark inside the x span, with its label."""
        span = self._x_range()
        if span is None or not self.marks:
            return []
        x0, x1 = span
        xspan = (x1 - x0) or 1.0
        out = []
        for x, label in self.marks:
            if x0 <= x <= x1:
                out.append((int(round((x - x0) / xspan * (cols * 2 - 1))) // 2, label))
        return out

    def _scale(self) -> tuple[float, float, bool] | None:
        values = [np.asarray(v, dtype=np.float64) for s in self._series
                  for v in (s.ys, s.lo, s.hi) if v is not None]
        finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
        if finite.size == 0:
            return None
        lo, hi = float(finite.min()), float(finite.max())
        # A loss that falls by orders of magnitude is unreadable on a linear axis; a log axis
        # needs positive values (a forced one ignores the others, as it draws them).
        if self.scale == "log" and hi > 0 and lo <= 0:
            positive = finite[finite > 0]
            lo = float(positive.min())
        log = lo > 0 and (self.scale == "log" or (self.scale == "auto"
                                                   and hi / lo > self.log_ratio))
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        if hi - lo < 1e-12:
            pad = abs(hi) * 0.05 or 1.0
            lo, hi = lo - pad, hi + pad
        return lo, hi, log

    def _plot(self, cols: int, rows: int) -> list[Text]:
        scale = self._scale()
        span = self._x_range()
        blank = [Text(" " * (_LABEL_W - 1) + "│", style="dim") for _ in range(rows)]
        if scale is None or span is None:
            if rows:
                blank[rows // 2].append(" waiting for metrics…", style="dim italic")
            return blank
        lo, hi, log = scale
        pw, ph = cols * 2, rows * 4
        dots = np.zeros((rows, cols), dtype=np.int32)
        color_at = np.full((rows, cols), -1, dtype=np.int32)
        line_at = np.zeros((rows, cols), dtype=bool)  # a cell holding a line (not just a band)
        x0, x1 = span
        xspan = (x1 - x0) or 1.0

        def points(xs: np.ndarray, ys: Sequence[float]) -> tuple[np.ndarray, np.ndarray] | None:
            ys = np.asarray(ys, dtype=np.float64)[: xs.size]
            ok = np.isfinite(ys) & (ys > 0 if log else True)
            if not ok.any():
                return None
            vals = np.log10(ys[ok]) if log else ys[ok]
            px = np.clip(np.round((xs[: ys.size][ok] - x0) / xspan * (pw - 1)).astype(np.int64),
                         0, pw - 1)
            py = np.clip(np.round((hi - vals) / (hi - lo) * (ph - 1)).astype(np.int64), 0, ph - 1)
            return px, py

        def paint(si: int, columns: tuple[np.ndarray, np.ndarray, np.ndarray],
                  line: bool) -> None:
            cells = _cells(*columns, ph, pw)
            dots[:] |= cells
            color_at[cells != 0] = si
            if line:
                line_at[:] |= cells != 0

        for si, s in enumerate(self._series):  # bands first: lines are drawn over them
            if s.lo is None or s.hi is None:
                continue
            xs = self._x_of(s)
            top, bottom = points(xs, s.hi), points(xs, s.lo)
            if top is not None and bottom is not None and top[0].size == bottom[0].size:
                paint(si, _band_columns(top[0], top[1], bottom[1]), line=False)
        for si, s in enumerate(self._series):
            drawn = points(self._x_of(s), s.ys)
            if drawn is not None:
                paint(si, _line_columns(*drawn), line=True)
        styles = [s.color for s in self._series] + [f"{s.color} dim" for s in self._series]
        styles.append(f"{self.mark_style} dim")
        # A style per cell: the series' colour, dim where only a band is; -1 where empty.
        keys = np.where(dots == 0, -1, color_at + np.where(line_at, 0, len(self._series)))
        chars = np.where(dots == 0, 0x20, 0x2800 + dots).astype(np.uint32)
        for col, _ in self.mark_columns(cols):  # a dotted column where nothing else is drawn
            empty = dots[:, col] == 0
            chars[empty, col] = ord("┊")
            keys[empty, col] = len(styles) - 1
        lines = []
        for r in range(rows):
            if r == 0:
                label = _fmt_tick(10 ** hi if log else hi)
            elif r == rows - 1:
                label = _fmt_tick(10 ** lo if log else lo)
            else:
                label = ""
            line = Text(label.rjust(_LABEL_W - 1)[: _LABEL_W - 1] + ("┤" if label else "│"),
                        style="dim")
            offset = len(line)
            line.append(chars[r].tobytes().decode("utf-32-le"))
            row_keys = keys[r]
            starts = _run_starts(row_keys)
            ends = np.append(starts[1:], cols)
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
                if row_keys[a] >= 0:
                    line.stylize(styles[row_keys[a]], offset + a, offset + b)
            lines.append(line)
        return lines


def _run_starts(values: np.ndarray) -> np.ndarray:
    """Indices where a run of equal values starts."""
    return np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))


def _band_columns(px: np.ndarray, top: np.ndarray, bottom: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dot columns, first dot row, last dot row) filling from ``top`` to ``bottom``."""
    starts = _run_starts(px)
    return (px[starts], np.minimum.reduceat(np.minimum(top, bottom), starts),
            np.maximum.reduceat(np.maximum(top, bottom), starts))


def _line_columns(px: np.ndarray, py: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dot columns, first dot row, last dot row) of a line through the points: per column the
    span of its points, joined to the previous column; columns between two points far apart
    get the interpolated line."""
    starts = _run_starts(px)
    ends = np.append(starts[1:], px.size) - 1
    xs = px[starts]
    mins, maxs = np.minimum.reduceat(py, starts), np.maximum.reduceat(py, starts)
    firsts, lasts = py[starts].astype(np.float64), py[ends].astype(np.float64)
    every = np.arange(xs[0], xs[-1] + 1)
    # Where the line enters each column (interpolated between a column's last point and the
    # next column's first) and where it leaves it.
    enter = np.interp(every, xs, firsts)
    leave = np.interp(every, xs, lasts)
    prev = np.concatenate((enter[:1], leave[:-1]))
    lo = np.minimum(np.minimum(enter, prev), leave)
    hi = np.maximum(np.maximum(enter, prev), leave)
    at = xs - xs[0]
    lo[at] = np.minimum(lo[at], mins)
    hi[at] = np.maximum(hi[at], maxs)
    return every, np.floor(lo + 0.5).astype(np.int64), np.floor(hi + 0.5).astype(np.int64)


def _cells(xs: np.ndarray, lo: np.ndarray, hi: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """Braille bits per cell (rows, cols) of the dots from ``lo`` to ``hi`` in dot columns
    ``xs``."""
    mask = np.zeros((ph, pw), dtype=bool)
    ys = np.arange(ph)[:, None]
    mask[:, xs] = (ys >= lo[None, :]) & (ys <= hi[None, :])
    out = np.zeros((ph // 4, pw // 2), dtype=np.int32)
    for x in (0, 1):
        for y in range(4):
            out |= mask[y::4, x::2] * _DOTS[x][y]
    return out
