"""The new-run form's lists: a field's value(s), and the sweep (and `bvae sweep` line) they make.

Any numeric field takes a list or a range as text (``1,2,4``, ``1..5``) and a choice field takes
several picks; the grammar and the checks are the engine's (:mod:`bvae_tui.engine.runs.sweeps`),
so the form and `bvae sweep` read the same text the same way.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from bvae_tui.engine.config import PRESETS, FieldInfo, check_field
from bvae_tui.engine.runs.sweeps.grid import parse_values, sweepable
from bvae_tui.engine.runs.sweeps.spec import SweepSpec


def field_values(info: FieldInfo, raw: Any) -> list[Any]:
    """The value(s) of one field as the form holds it: several picks of a choice field, text
    with a list or a range for a numeric one, else one value (checked like `bvae train`)."""
    if isinstance(raw, (list, tuple)):
        return [check_field(info, v) for v in parse_values(info, list(raw))]
    if isinstance(raw, str) and sweepable(info) and ("," in raw or ".." in raw):
        return [check_field(info, v) for v in parse_values(info, raw)]
    return [check_field(info, raw)]


def base_values(fields: Sequence[FieldInfo], preset: str | None) -> dict[str, Any]:
    """Every field's value before the form changes it: the preset's, else the default."""
    base = {f.name: f.default for f in fields}
    if preset in PRESETS:
        base.update(PRESETS[str(preset)])
    return base


def form_spec(fields: Sequence[FieldInfo], values: Mapping[str, Any],
              axes: Mapping[str, list[Any]], preset: str | None, name: str | None) -> SweepSpec:
    """The sweep of the form: the preset, every value that differs from it, and the lists."""
    base = base_values(fields, preset)
    chosen: dict[str, list[Any]] = {}
    for info in fields:
        if info.name in axes:
            chosen[info.name] = list(axes[info.name])
        elif info.name in values and values[info.name] != base.get(info.name):
            chosen[info.name] = [values[info.name]]
    return SweepSpec(values=chosen, preset=preset if preset in PRESETS else None, name=name)


SPELL_OUT = 8  # lists up to this long are spelt value by value; longer ones as typed (a range)


def sweep_command_line(fields: Sequence[FieldInfo], spec: SweepSpec,
                       typed: Mapping[str, str] | None = None) -> str:
    """The `bvae sweep` line that creates the same sweep. ``typed``: the text of each field as
    the form holds it; a list longer than :data:`SPELL_OUT` is written that way (``1..20000``,
    which `bvae sweep` reads the same), not as 20,000 values."""
    parts = ["bvae", "sweep"]
    if spec.preset:
        parts += ["--preset", spec.preset]
    if spec.name:
        parts += ["--name", spec.name]
    for info in fields:
        given = spec.values.get(info.name)
        if not given:
            continue
        if len(given) == 1:
            parts += info.words(given[0])
        else:
            text = (typed or {}).get(info.name, "")
            long = len(given) > SPELL_OUT and ".." in text
            parts += [info.option, text.strip() if long else ",".join(info.show(v) for v in given)]
    return " ".join(shlex.quote(p) for p in parts)
