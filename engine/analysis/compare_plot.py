"""`bvae compare --plot`: a matplotlib figure of a comparison (matplotlib is an optional extra).

Top row: each metric against the grouping field, one small point per run (seed) and the group
mean with its std as an error bar; bottom row: the training curves of each group (mean line,
min-max band over its runs) and, when any run has probes (`--probe-every`), a probed score over
iterations (MIG, or one factor's best share) the same way, naming the groups without probes
rather than drawing them as zeros. Colours follow the groups, in the order the TUI uses
(Tableau 10, matplotlib's default cycle).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bvae_tui.engine.analysis.compare import (
    SYMBOLS,
    Group,
    colour,
    group_band,
    has_curve,
    probe_scores,
    without_probes,
)
from bvae_tui.engine.analysis.compare_runs import PROBE_MIG, CompareRun, probe_label
from bvae_tui.engine.analysis.compare_table import METRIC_LABELS, TRAINING_METRICS, score_table
from bvae_tui.engine.analysis.export import writable_folder
from bvae_tui.engine.analysis.export_data import require
from bvae_tui.engine.atomic import atomic_path
from bvae_tui.engine.errors import ConfigError, RunError

FORMATS = (".png", ".svg", ".pdf")
MAX_METRIC_PANELS = 4


def check_plot_path(output: str | os.PathLike) -> Path:
    """The figure's path, checked before any work: matplotlib there, a known suffix, a writable
    folder."""
    require("matplotlib", "plot", "--plot")
    path = Path(output).expanduser()
    if path.suffix.lower() not in FORMATS:
        raise RunError(f"--plot {path} must end in {', '.join(FORMATS)}; "
                       f"e.g. --plot {path.with_suffix('.png')}")
    if path.is_dir():
        raise RunError(f"--plot {path} is a folder; give a file name, e.g. {path}/compare.png")
    return writable_folder(path, path.parent, "--plot")


def _numeric_axis(groups: Sequence[Group]) -> list[float] | None:
    """The groups' values on a numeric x axis: one numeric grouping field, else None."""
    if not groups or len(groups[0].fields) != 1:
        return None
    values = [g.key[0] for g in groups]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return [float(v) for v in values]
    return None


def _metric_panel(ax: Any, groups: Sequence[Group], metric: str) -> None:
    table = score_table(list(groups), [metric])
    xs = _numeric_axis(groups)
    log = bool(xs and min(xs) > 0 and max(xs) / min(xs) >= 4)
    positions = xs if xs is not None else [float(i) for i in range(len(groups))]
    spread = 0.12 if xs is None else 0.02 * ((max(xs) - min(xs)) or 1.0)
    means = []
    for gi, (group, x) in enumerate(zip(groups, positions, strict=True)):
        stat = table.stat(gi, metric)
        if stat is None:
            continue
        # The seeds side by side around the group's position (multiplicative on a log axis).
        offsets = np.linspace(-1.0, 1.0, stat.n) if stat.n > 1 else np.zeros(1)
        px = x * 2 ** (0.1 * offsets) if log else x + spread * offsets
        ax.scatter(px, stat.values, s=14, color=colour(group.colour), alpha=0.55, linewidths=0)
        std = stat.std or 0.0
        ax.errorbar([x], [stat.mean], yerr=[[std], [std]], fmt="o", color=colour(group.colour),
                    markersize=6, capsize=3, markeredgecolor="k", markeredgewidth=0.6)
        means.append((x, stat.mean))
    if len(means) > 1 and xs is not None:  # a trend only along a numeric field
        ax.plot(*zip(*means, strict=True), color="0.4", linewidth=0.8, zorder=0)
    if log:
        ax.set_xscale("log", base=2)
    ax.set_xticks(positions)
    ax.set_xticklabels([_tick(g, xs is not None) for g in groups], fontsize=8)
    if groups and groups[0].fields:
        ax.set_xlabel(", ".join(SYMBOLS.get(f, f) for f in groups[0].fields))
    training = metric in TRAINING_METRICS
    ax.set_title(METRIC_LABELS.get(metric, metric) + (" (last row)" if training else ""),
                 fontsize=10)
    ax.grid(alpha=0.3)


def _tick(group: Group, numeric: bool) -> str:
    if numeric:
        value = group.key[0]
        return f"{value:g}" if isinstance(value, float) else str(value)
    return group.label


def probe_title(name: str) -> str:
    """The title of the probe panel (a factor's name is probes.jsonl's: a '$' stays a dollar,
    never the start of matplotlib's math text)."""
    return f"{probe_label(name)} (probes)".replace("$", r"\$")


def choose_probe(requested: str | None, runs: Sequence[CompareRun]) -> str | None:
    """The probe curve to draw: ``requested`` (``mig`` or a factor name) checked against the
    runs' probes, else MIG when any run has probes; None when none has."""
    available = probe_scores(runs)
    if requested is None:
        return (PROBE_MIG if PROBE_MIG in available else available[0]) if available else None
    name = requested.strip()
    key = name.lower() if name.lower() == PROBE_MIG else f"mi/{name}"
    if key in available:
        return key
    if not available:
        raise ConfigError(f"--probe {name}: none of these runs has probes (probes.jsonl); "
                          "train with --probe-every N on a dataset with factors")
    have = ", ".join(n.removeprefix("mi/") for n in available)
    raise ConfigError(f"--probe: no run has a probed '{name}'; these runs have: {have}")


def _curve_panel(ax: Any, groups: Sequence[Group], name: str, title: str,
                 linear: bool = False) -> None:
    spans = []
    for group in groups:
        band = group_band(group, name)
        if band.xs.size == 0 or not np.isfinite(band.mean).any():
            continue
        c = colour(group.colour)
        ax.plot(band.xs, band.mean, color=c, linewidth=1.2,
                label=f"{group.label} (n={len(group.runs)})" if len(group.runs) > 1
                else group.label)
        if len(group.runs) > 1:
            ax.fill_between(band.xs, band.lo, band.hi, color=c, alpha=0.2, linewidth=0)
        finite = band.mean[np.isfinite(band.mean)]
        spans += [float(finite.min()), float(finite.max())]
    # Losses fall fastest at the start: on a log axis the rest of the run stays readable.
    if not linear and spans and min(spans) > 0 and max(spans) / min(spans) > (
            5 if name in ("loss", "recon") else 30):
        ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("iteration")
    ax.grid(alpha=0.3)


def _note_without_probes(ax: Any, groups: Sequence[Group]) -> None:
    """Name the groups without probes inside the probe panel (they have no line there)."""
    missing = without_probes(groups)
    if missing:
        names = ", ".join(g.label for g in missing[:4]) + (", ..." if len(missing) > 4 else "")
        ax.text(0.02, 0.98, f"no probes: {names}", transform=ax.transAxes, fontsize=7,
                va="top", color="0.35")


def build_figure(runs: Sequence[CompareRun], groups: Sequence[Group], metrics: Sequence[str],
                 probe: str | None = None) -> Any:
    """The comparison's matplotlib Figure; ``probe`` picks the probed score of the probe panel
    (see :func:`choose_probe`; MIG by default, no panel when no run has probes)."""
    from matplotlib.figure import Figure

    shown = list(metrics)[:MAX_METRIC_PANELS]
    curves = [("loss", "loss"), ("recon", "reconstruction (nats)"), ("kl", "KL (nats)")]
    if has_curve(runs, "c"):
        curves.append(("c", "capacity C (nats)"))
    probe_name = choose_probe(probe, runs)
    if probe_name is not None:
        curves.append((probe_name, probe_title(probe_name)))
    cols = max(len(shown), len(curves))
    fig = Figure(figsize=(3.4 * cols, 6.4), layout="constrained")
    grid = fig.add_gridspec(2, cols)
    for i, metric in enumerate(shown):
        _metric_panel(fig.add_subplot(grid[0, i]), groups, metric)
    axes = [fig.add_subplot(grid[1, i]) for i in range(len(curves))]
    for ax, (name, title) in zip(axes, curves, strict=True):
        probed = name == probe_name
        _curve_panel(ax, groups, name, title, linear=probed)
        if probed:
            ax.set_ylim(bottom=0.0)  # shares and MIG live in [0, 1]
            _note_without_probes(ax, groups)
    if axes:
        # On a training curve, which every group has (groups without probes miss the probe's).
        axes[-2 if probe_name is not None else -1].legend(fontsize=7, loc="best")
    datasets = sorted({str(r.config.get("dataset")) for r in runs})
    by = ", ".join(SYMBOLS.get(f, f) for f in groups[0].fields) if groups and groups[
        0].fields else "run"
    fig.suptitle(f"{len(runs)} runs on {', '.join(datasets)}, grouped by {by}", fontsize=11)
    return fig


def write_plot(runs: Sequence[CompareRun], groups: Sequence[Group], metrics: Sequence[str],
               output: str | os.PathLike, probe: str | None = None) -> Path:
    """Draw the comparison of ``groups`` and write it to ``output`` (.png, .svg or .pdf)."""
    path = check_plot_path(output)
    fig = build_figure(runs, groups, metrics, probe)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format=path.suffix.lower().lstrip("."))
    except OSError as exc:
        raise RunError(f"cannot write {path} ({exc.strerror or exc}); "
                       "choose another file with --plot") from None
    return path
