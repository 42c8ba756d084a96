"""Reading a run's files into records, tolerantly: nothing here raises on a damaged file.

:mod:`bvae_tui.engine.runs.store` reads through these (and caches them for pollers); what each
file holds is in :mod:`bvae_tui.engine.runs.records`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bvae_tui.engine.config import TrainConfig
from bvae_tui.engine.errors import ConfigError
from bvae_tui.engine.runs.files import last_json_line, read_json
from bvae_tui.engine.runs.records import CONFIG_FILE, EvalResult, MetricsRow, RunRecord


def config_problem(exc: Exception, values: dict[str, Any]) -> str:
    """What is wrong in config.json's values, e.g. ``beta = -5, which must be at least 0``."""
    field = getattr(exc, "field", None)
    if field is None:
        return str(exc)
    problem = re.split(r"[;,] got ", str(exc).split(" ", 1)[-1])[0]  # drop "--beta"
    return f"{field} = {values.get(field)!r}, which {problem}"


def checked_record(path: Path) -> tuple[RunRecord | None, str | None]:
    """config.json and what is wrong with it (None: nothing), for the summary."""
    record = read_record(path)
    if record is None:
        return None, f"{CONFIG_FILE} is missing or corrupt"
    try:
        TrainConfig.from_dict(record.config).validate()
    except (ConfigError, TypeError) as exc:
        return record, f"{CONFIG_FILE} has {config_problem(exc, record.config)}"
    return record, None


def read_record(path: Path) -> RunRecord | None:
    data = read_json(path)
    if data is None or not isinstance(data.get("config"), dict):
        return None
    return RunRecord.from_dict(data)


def read_eval(path: Path) -> EvalResult | None:
    data = read_json(path)
    return EvalResult.from_dict(data) if data is not None else None


def last_row(path: Path) -> MetricsRow | None:
    data = last_json_line(path)
    return MetricsRow.from_dict(data) if data is not None else None


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
