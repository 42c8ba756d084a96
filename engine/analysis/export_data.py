"""Runs' numbers for other tools: a CSV of every metrics row, and TensorBoard event files.

CSV: one line per metrics row of every run, with the config fields that differ between the runs
(a sweep's swept values) as columns, and one column per latent for the per-latent lists. Where
runs have probes (probes.jsonl, `--probe-every`), ``probe_mig`` and per factor
``probe_latent_<factor>`` (its best latent) and ``probe_mi_<factor>`` (the share of the factor,
MI / H, that latent carries) are filled on the line of the probe's iteration (a line of its own
when no metrics row was logged at that step); they stay empty elsewhere.

TensorBoard: one folder per run (named by run id) under the output folder, written with the
``tensorboard`` package's own event writer (an optional extra): the training scalars, the KL of
each latent, the probes (``probe/mig``, ``probe/mi/<factor>``, ``probe/best_latent/<factor>``),
the latest traversal and reconstruction previews as images, the config as hparams and the eval
scores, so ``tensorboard --logdir DIR`` (and ``wandb sync DIR``) show the runs.

Both write to a temporary place beside the output and move it into place at the end, so an
error never leaves half a file or half a folder behind.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bvae_tui.engine.analysis.compare import differing_fields
from bvae_tui.engine.analysis.compare_runs import CompareRun, full_config
from bvae_tui.engine.analysis.export import writable_folder
from bvae_tui.engine.atomic import atomic_path, share_like_open
from bvae_tui.engine.errors import ConfigError, RunError
from bvae_tui.engine.runs.records import MetricsRow, ProbeRow
from bvae_tui.engine.runs.store import Run

# Per-latent lists of a metrics row and the column prefix of each latent's value.
_LATENT_COLUMNS = {"kl_per_latent": "kl", "mu_mean": "mu", "var_mean": "var"}
_ROW_FIELDS = [f.name for f in dataclasses.fields(MetricsRow) if f.name != "extra"]


def require(module: str, extra: str, what: str) -> Any:
    """Import an optional dependency, or a one-line error saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{what} needs the '{module.split('.')[0]}' package, which is not "
                          f"installed; pip install 'bvae-tui[{extra}]'") from None


def _configs(runs: Sequence[Run]) -> list[CompareRun]:
    out = []
    for run in runs:
        record = run.record()
        out.append(CompareRun(id=run.id, name=record.name or run.id, path=run.path,
                              state=run.state, config=full_config(record.config)))
    return out


def _rows_of(runs: Sequence[Run]) -> list[list[MetricsRow]]:
    """Every run's metrics rows; a one-line error when none of the runs has any yet."""
    rows = [[r for r in run.metrics() if r.iter is not None] for run in runs]
    if not any(rows):
        names = ", ".join(run.id for run in runs[:3]) + (", ..." if len(runs) > 3 else "")
        raise RunError(f"no metrics rows yet in {names}; wait until a run has logged a row "
                       "(every --log-every steps)")
    return rows


def best_latents(row: ProbeRow) -> dict[str, tuple[int, float]]:
    """Per factor of a probe row, (its best latent, the share of the factor that latent
    carries); a factor whose column is damaged (wrong width, non-finite) is left out."""
    factors = row.factors or []
    mi = row.mi or []
    if not mi or any(len(r) != len(factors) for r in mi):
        return {}
    out = {}
    for k, factor in enumerate(factors):
        column = [r[k] for r in mi]
        if all(math.isfinite(v) for v in column):
            best = max(range(len(column)), key=column.__getitem__)
            out[factor] = (best, float(column[best]))
    return out


def _probe_columns(probes: Sequence[Sequence[ProbeRow]]) -> tuple[list[str], list[str]]:
    """(header, factor names) of the probe columns; none when no run has a probe."""
    if not any(probes):
        return [], []
    factors = list(dict.fromkeys(f for rows in probes for r in rows for f in r.factors or []))
    return ["probe_mig", *(f"probe_{kind}_{f}" for f in factors
                           for kind in ("latent", "mi"))], factors


def _probe_cells(row: ProbeRow | None, factors: list[str]) -> list[Any]:
    if row is None:
        return [""] * (1 + 2 * len(factors))
    best = best_latents(row)
    cells = [_cell(row.mig)]
    for factor in factors:
        latent, share = best.get(factor, ("", None))
        cells += [latent, _cell(share)]
    return cells


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "" if value is None else repr(value)
    return repr(value) if isinstance(value, float) else value


def export_csv(runs: Sequence[Run], output: str | os.PathLike) -> Path:
    """Write every metrics row of ``runs`` to ``output`` (.csv); returns the path."""
    path = Path(output).expanduser()
    if path.suffix.lower() != ".csv":
        raise RunError(f"output {path} must end in .csv; e.g. -o {path.with_suffix('.csv')}")
    if path.is_dir():
        raise RunError(f"output {path} is a folder; give a file name, e.g. -o {path}/rows.csv")
    rows = _rows_of(runs)
    probes = [_probes_of(run) for run in runs]
    configs = _configs(runs)
    swept = differing_fields(configs)
    widths = {name: max((len(getattr(r, name) or []) for rs in rows for r in rs), default=0)
              for name in _LATENT_COLUMNS}
    scalars = [n for n in _ROW_FIELDS if n not in _LATENT_COLUMNS]
    probe_header, factors = _probe_columns(probes)
    header = ["run", "name", *swept, *scalars,
              *(f"{prefix}_z{i}" for name, prefix in _LATENT_COLUMNS.items()
                for i in range(widths[name])), *probe_header]
    blank_metrics = [""] * (len(scalars) + sum(widths.values()))
    at_iter = scalars.index("iter")
    writable_folder(path, path.parent)
    try:
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            for cfg, run_rows, run_probes in zip(configs, rows, probes, strict=True):
                fixed = [cfg.id, cfg.name, *(_cell(cfg.config.get(f)) for f in swept)]
                by_iter = {int(r.iter or 0): r for r in run_probes}
                lines: list[tuple[int, list[Any]]] = []
                for row in run_rows:
                    latents = []
                    for name in _LATENT_COLUMNS:
                        values = list(getattr(row, name) or [])
                        latents += [_cell(v) for v in values] + [""] * (widths[name]
                                                                        - len(values))
                    it = int(row.iter or 0)
                    probe = by_iter.pop(it, None) if probe_header else None
                    lines.append((it, [*(_cell(getattr(row, n)) for n in scalars), *latents,
                                       *(_probe_cells(probe, factors) if probe_header else [])]))
                for it, probe in by_iter.items():  # a probe at a step no row was logged at
                    metrics = list(blank_metrics)
                    metrics[at_iter] = it
                    lines.append((it, [*metrics, *_probe_cells(probe, factors)]))
                for _, cells in sorted(lines, key=lambda line: line[0]):
                    writer.writerow([*fixed, *cells])
    except OSError as exc:
        raise RunError(f"cannot write {path} ({exc.strerror or exc}); "
                       "choose another output with -o") from None
    return path


def _probes_of(run: Run) -> list[ProbeRow]:
    """A run's probe rows by iteration (the last of an iteration wins; a torn line is not a
    row)."""
    by_iter = {int(r.iter): r for r in run.probes() if r.iter is not None}
    return [by_iter[i] for i in sorted(by_iter)]


# --------------------------------------------------------------------------------------------
# TensorBoard


def _hparam(value: Any) -> bool | float | str | None:
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    return None


class _Events:
    """Events of one run, through tensorboard's own event file writer."""

    def __init__(self, folder: Path):
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.Event, self.Summary = Event, Summary
        self.writer = EventFileWriter(str(folder), max_queue_size=1000)

    def add(self, summary: Any, step: int = 0, wall_time: float | None = None) -> None:
        self.writer.add_event(self.Event(wall_time=wall_time or time.time(), step=step,
                                         summary=summary))

    def scalars(self, values: dict[str, float | None], step: int, wall_time: float | None
                ) -> None:
        tags = [self.Summary.Value(tag=tag, simple_value=float(v)) for tag, v in values.items()
                if v is not None and math.isfinite(v)]
        if tags:
            self.add(self.Summary(value=tags), step, wall_time)

    def image(self, tag: str, png: Path, step: int) -> None:
        from PIL import Image

        try:
            with Image.open(png) as img:
                width, height = img.size
                channels = {"L": 1, "RGB": 3, "RGBA": 4}.get(img.mode, 3)
            data = png.read_bytes()
        except OSError:
            return  # a preview being replaced right now: the next export has it
        image = self.Summary.Image(height=height, width=width, colorspace=channels,
                                   encoded_image_string=data)
        self.add(self.Summary(value=[self.Summary.Value(tag=tag, image=image)]), step)

    def close(self) -> None:
        self.writer.close()


def _hparams_summaries(config: dict[str, Any], state: str, created: float | None
                       ) -> tuple[Any, Any]:
    """(session start, session end) summaries of the hparams plugin."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2, summary_v2

    values = {k: v for k, v in ((k, _hparam(v)) for k, v in config.items()) if v is not None}
    start = summary_v2.hparams_pb(values, trial_id=None, start_time_secs=created)
    status = {"finished": api_pb2.STATUS_SUCCESS, "failed": api_pb2.STATUS_FAILURE,
              "running": api_pb2.STATUS_RUNNING}.get(state, api_pb2.STATUS_UNKNOWN)
    end_info = plugin_data_pb2.HParamsPluginData(
        session_end_info=plugin_data_pb2.SessionEndInfo(status=status,
                                                        end_time_secs=time.time()))
    end = Summary()
    end.value.add(tag=metadata.SESSION_END_INFO_TAG, tensor=metadata.NULL_TENSOR,
                  metadata=metadata.create_summary_metadata(end_info))
    return start, end


def _write_run(run: Run, folder: Path, rows: list[MetricsRow]) -> None:
    events = _Events(folder)
    try:
        record = run.record()
        start, end = _hparams_summaries(full_config(record.config), run.state, record.created)
        events.add(start, 0, record.created)
        for row in rows:
            assert row.iter is not None
            values: dict[str, float | None] = {
                "train/loss": row.loss, "train/recon": row.recon, "train/kl": row.kl,
                "train/c": row.c, "train/img_per_s": row.img_per_s}
            for i, v in enumerate(row.kl_per_latent or []):
                values[f"kl_per_latent/z{i}"] = v
            events.scalars(values, row.iter, row.time)
        for probe in _probes_of(run):
            scalars: dict[str, float | None] = {"probe/mig": probe.mig}
            for factor, (latent, share) in best_latents(probe).items():
                scalars[f"probe/mi/{factor}"] = share
                scalars[f"probe/best_latent/{factor}"] = float(latent)
            events.scalars(scalars, int(probe.iter or 0), probe.time)
        last_iter = rows[-1].iter if rows else 0
        for kind, png in run.preview_paths().items():
            if png.exists():
                events.image(f"preview/{kind}", png, last_iter or 0)
        result = run.eval_results()
        if result and result.scores:
            events.scalars({f"eval/{k}": v for k, v in result.scores.items()},
                           result.iteration if result.iteration is not None else last_iter or 0,
                           result.created)
        events.add(end, last_iter or 0)
    finally:
        events.close()


def export_tensorboard(runs: Sequence[Run], output: str | os.PathLike) -> list[Path]:
    """Write one TensorBoard run folder per run under ``output`` (a folder; existing folders of
    the same runs are replaced); returns the run folders."""
    require("tensorboard", "tensorboard", "bvae export tensorboard")
    root = Path(output).expanduser()
    if root.exists() and not root.is_dir():
        raise RunError(f"output {root} is a file; give a folder, e.g. -o {root.parent}/tb")
    rows = _rows_of(runs)
    writable_folder(root / "x", root)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=root))
    try:
        share_like_open(staging, directory=True)
        for run, run_rows in zip(runs, rows, strict=True):
            (staging / run.id).mkdir()
            _write_run(run, staging / run.id, run_rows)
        out = []
        for run in runs:
            target = root / run.id
            if target.exists():
                trash = root / f".replaced-{run.id}"
                os.rename(target, trash)
                shutil.rmtree(trash, ignore_errors=True)
            os.rename(staging / run.id, target)
            out.append(target)
        return out
    except OSError as exc:
        raise RunError(f"cannot write {root} ({exc.strerror or exc}); "
                       "choose another output with -o") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
