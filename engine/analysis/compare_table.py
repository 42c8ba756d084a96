"""Score tables of a comparison: each metric per group as mean ± std over its runs, with n.

Metrics are the eval scores the runs have (eval.json: betavae, factorvae, mig, dci, sap,
modularity, explicitness, udr, and whatever a newer version scores) and figures of the training's
last rows: ``loss``, ``recon``, ``kl`` and ``active`` (latents above 0.1 nats). The std is the
sample standard deviation over the group's runs (none for a group of one), as papers report
spread over seeds.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bvae_tui.engine.analysis.compare import Group, fmt_value
from bvae_tui.engine.analysis.compare_runs import CompareRun
from bvae_tui.engine.errors import ConfigError

# Known scores first, in this order (as `bvae eval` shows them).
SCORE_ORDER = ("betavae", "factorvae", "mig", "dci", "sap", "modularity", "explicitness", "udr")
TRAINING_METRICS = ("loss", "recon", "kl", "active")
LOWER_IS_BETTER = frozenset({"loss", "recon"})
NO_BEST = frozenset({"kl", "active"})  # more or fewer nats, or latents, is not better as such
METRIC_LABELS = {"betavae": "BetaVAE", "factorvae": "FactorVAE", "mig": "MIG", "dci": "DCI",
                 "sap": "SAP", "modularity": "Modularity", "explicitness": "Explicitness",
                 "udr": "UDR", "loss": "loss", "recon": "recon", "kl": "KL", "active": "active"}


def score_names(runs: Sequence[CompareRun]) -> list[str]:
    """Eval metrics any of ``runs`` has: the known ones in their order, then the rest sorted."""
    found = {name for r in runs for name in r.scores}
    return [m for m in SCORE_ORDER if m in found] + sorted(found - set(SCORE_ORDER))


def available_metrics(runs: Sequence[CompareRun]) -> list[str]:
    """Every metric some run has a value of: eval scores, then training figures."""
    training = [m for m in TRAINING_METRICS if any(r.value(m) is not None for r in runs)]
    return score_names(runs) + training


def choose_metrics(requested: str | Sequence[str] | None,
                   runs: Sequence[CompareRun]) -> list[str]:
    """``requested`` (comma-separated) checked against what the runs have; by default the eval
    scores, or the training figures when no run has been evaluated."""
    available = available_metrics(runs)
    if requested is None:
        scores = score_names(runs)
        if not scores:
            return available
        return [*scores, *(m for m in ("kl", "active") if m in available)]
    names = [p.strip().lower() for p in requested.split(",")] if isinstance(
        requested, str) else list(requested)
    names = [n for n in names if n]
    if not names:
        raise ConfigError("--metric needs a metric name, e.g. --metric mig")
    for name in names:
        if name not in available:
            have = ", ".join(available) or "none (no run has metrics rows or eval.json)"
            raise ConfigError(f"--metric: no run has '{name}'; these runs have: {have}")
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Stat:
    """One metric over one group's runs."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / self.n

    @property
    def std(self) -> float | None:
        """Sample standard deviation (n - 1); None for a single value."""
        if self.n < 2:
            return None
        mean = self.mean
        return math.sqrt(math.fsum((v - mean) ** 2 for v in self.values) / (self.n - 1))

    def text(self, digits: int = 3, compact: bool = False) -> str:
        """``0.832 ± 0.012`` (``0.832±0.012`` when ``compact``); the mean alone for a single
        value."""
        fmt = f"{{:.{digits}f}}"
        std = self.std
        sep = "±" if compact else " ± "
        return fmt.format(self.mean) + ("" if std is None else sep + fmt.format(std))


@dataclass
class ScoreTable:
    """Each metric per group, and the best group per metric."""

    groups: list[Group]
    metrics: list[str]
    stats: dict[tuple[int, str], Stat] = field(default_factory=dict)  # (group, metric)
    best: dict[str, int] = field(default_factory=dict)  # metric -> group index
    without_eval: list[CompareRun] = field(default_factory=list)

    def stat(self, group: int, metric: str) -> Stat | None:
        return self.stats.get((group, metric))

    def as_json(self) -> dict[str, Any]:
        """The table for `bvae compare --json` (plain values only)."""
        fields = self.groups[0].fields if self.groups else ()
        out_groups = []
        for gi, group in enumerate(self.groups):
            metrics = {}
            for metric in self.metrics:
                stat = self.stat(gi, metric)
                metrics[metric] = None if stat is None else {
                    "mean": stat.mean, "std": stat.std, "n": stat.n, "values": list(stat.values)}
            out_groups.append({"label": group.label, "values": group.values,
                               "runs": [r.id for r in group.runs], "metrics": metrics})
        return {"by": list(fields), "metrics": self.metrics, "groups": out_groups,
                "best": {m: self.groups[gi].label for m, gi in self.best.items()},
                "without_eval": [r.id for r in self.without_eval]}

    def csv_text(self) -> str:
        """One line per group: the grouping values (or the run label), the number of runs, then
        mean, std and n of each metric."""
        fields = list(self.groups[0].fields) if self.groups else []
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        head = fields or ["run"]
        writer.writerow([*head, "runs", *(f"{m}_{s}" for m in self.metrics
                                          for s in ("mean", "std", "n"))])
        for gi, group in enumerate(self.groups):
            key = [fmt_value(v) for v in group.key] if fields else [group.label]
            cells: list[Any] = []
            for metric in self.metrics:
                stat = self.stat(gi, metric)
                cells += ["", "", 0] if stat is None else [
                    repr(stat.mean), "" if stat.std is None else repr(stat.std), stat.n]
            writer.writerow([*key, len(group.runs), *cells])
        return out.getvalue()


def score_table(groups: list[Group], metrics: list[str]) -> ScoreTable:
    """Mean ± std and n of each metric per group; the best group per metric (highest mean,
    lowest for losses; none for KL and active latents, or when only one group has values)."""
    table = ScoreTable(groups=groups, metrics=metrics)
    for gi, group in enumerate(groups):
        for metric in metrics:
            values = tuple(v for r in group.runs if (v := r.value(metric)) is not None)
            if values:
                table.stats[(gi, metric)] = Stat(values)
    for metric in metrics:
        scored = [(gi, s.mean) for (gi, m), s in table.stats.items() if m == metric]
        if metric in NO_BEST or len(scored) < 2:
            continue
        pick = min if metric in LOWER_IS_BETTER else max
        table.best[metric] = pick(scored, key=lambda item: item[1])[0]
    table.without_eval = [r for g in groups for r in g.runs if not r.evaluated]
    return table


def sort_groups(table: ScoreTable, metric: str | None, descending: bool = True) -> list[int]:
    """Group indices ordered by ``metric``'s mean (groups without it last); None: as grouped."""
    indices = list(range(len(table.groups)))
    if metric is None:
        return indices

    def key(gi: int) -> tuple[int, float]:
        stat = table.stat(gi, metric)
        if stat is None:
            return (1, 0.0)
        return (0, -stat.mean if descending else stat.mean)

    return sorted(indices, key=key)
