"""Warnings about an objective's estimates, read from a run's metrics rows.

beta-TCVAE and FactorVAE train on estimates of the total correlation, which can go wrong while
the loss looks fine: a TC estimate below zero (a total correlation never is), or a FactorVAE
discriminator that stays at chance (its estimate carries no signal) or is always right (its
density ratio saturates). A condition is reported once it has held for ``HOLD_ITERS`` iterations
over at least ``MIN_ROWS`` rows, so a noisy start does not raise one. The worker writes them to
worker.log (:class:`EstimateWatch`) and the TUI's monitor shows the same ones
(:func:`estimate_warnings`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

HOLD_ITERS = 1000
MIN_ROWS = 3
CHANCE_BAND = 0.03  # accuracy within 50% +- this is chance
SATURATED = 0.99

# kind, a short name (a status line), the metrics field it reads, when a value is bad, what to
# say (n: iterations it held, last: the latest value)
CHECKS: tuple[tuple[str, str, str, Callable[[float], bool], str], ...] = (
    ("negative-tc", "TC<0", "tc", lambda v: v < 0.0,
     "TC estimate below zero for {n} iterations (now {last:.3g} nats): a total correlation "
     "cannot be, so the estimate is off (tcvae: try a larger --batch-size; factor: the "
     "discriminator is not keeping up)"),
    ("disc-chance", "D at chance", "disc_acc", lambda v: abs(v - 0.5) <= CHANCE_BAND,
     "discriminator at chance ({last:.0%}) for {n} iterations: its TC estimate carries no "
     "signal (try a larger --disc-lr)"),
    ("disc-saturated", "D saturated", "disc_acc", lambda v: v >= SATURATED,
     "discriminator right {last:.0%} of the time for {n} iterations: its density ratio "
     "saturates (try a smaller --disc-lr or --gamma-tc)"),
)
FIELDS = tuple(sorted({check[2] for check in CHECKS}))


@dataclass(frozen=True)
class EstimateWarning:
    kind: str
    short: str
    since: int  # the iteration it has held since
    message: str


def _bad(value: float | None, test: Callable[[float], bool]) -> bool:
    return value is not None and math.isfinite(value) and test(value)


def estimate_warnings(iters: Sequence[float], series: Mapping[str, Sequence[float | None]],
                      hold: int | None = None, min_rows: int | None = None,
                      ) -> list[EstimateWarning]:
    """The warnings that hold at the end of these rows: ``iters`` their iterations, ``series``
    each metrics field's values row by row (None or NaN: not logged). ``hold`` and ``min_rows``
    default to :data:`HOLD_ITERS` and :data:`MIN_ROWS`."""
    hold = HOLD_ITERS if hold is None else hold
    min_rows = MIN_ROWS if min_rows is None else min_rows
    out = []
    for kind, short, key, test, template in CHECKS:
        values = series.get(key)
        if not values or len(values) != len(iters):
            continue
        n = 0
        while n < len(values) and _bad(values[-1 - n], test):
            n += 1
        if n < min_rows:
            continue
        since = iters[-1 - n] if n < len(iters) else 0.0
        held = int(iters[-1] - since)
        if held >= hold:
            out.append(EstimateWarning(kind, short, int(since),
                                       template.format(n=f"{held:,}", last=values[-1])))
    return out


@dataclass
class EstimateWatch:
    """Follows a training run's rows and says each warning once, when it starts to hold."""

    keep: int = 10_000  # rows kept: a condition that held longer is already reported
    iters: list[float] = field(default_factory=list)
    series: dict[str, list[float | None]] = field(
        default_factory=lambda: {key: [] for key in FIELDS})
    active: set[str] = field(default_factory=set)

    def add(self, iteration: int, values: Mapping[str, float | None]) -> list[str]:
        """Take one row (its iteration, its fields); return the warnings that start now."""
        self.iters.append(float(iteration))
        for key, column in self.series.items():
            column.append(values.get(key))
        if len(self.iters) > self.keep:
            del self.iters[: -self.keep]
            for column in self.series.values():
                del column[: -self.keep]
        now = estimate_warnings(self.iters, self.series)
        new = [w.message for w in now if w.kind not in self.active]
        self.active = {w.kind for w in now}
        return new
