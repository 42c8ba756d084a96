"""The value grammar of a sweep and its grid: which fields take several values, and the members.

Any numeric field or field with choices of :class:`~bvae_tui.engine.config.TrainConfig` takes a
list: ``1,2,4,8``, an inclusive range ``1..5`` (step 1), ``0.5..2:0.5`` (arithmetic step) or
``1..16:x2`` (geometric: 1, 2, 4, 8, 16), and any mix of them (``1,2,10..12``). The grid is the
cartesian product of the fields given more than one value, in the order they were given (the first
field outermost), so member ``i`` is always the same combination.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from bvae_tui.engine.config import FieldInfo, field_info, schema
from bvae_tui.engine.errors import ConfigError

MAX_MEMBERS = 10_000  # more than this needs --yes
MAX_AXIS_VALUES = 1_000_000  # a range longer than this is refused outright (it is a typo)


def sweepable(info: FieldInfo) -> bool:
    """Whether a field can take a list: numbers, choices and the dataset (not other text,
    paths, devices, flags)."""
    # The dataset too: a study compares data sets (--dataset dsprites,color-dsprites).
    return info.type in (int, float) or info.choices is not None or info.widget == "dataset"


def known_field(name: str) -> FieldInfo:
    """The schema entry of ``name`` (dashes allowed), or a ConfigError listing the fields."""
    key = name.replace("-", "_")
    names = [f.name for f in schema()]
    if key not in names:
        raise ConfigError(f"unknown field '{name}'; fields are: {', '.join(names)}")
    return field_info(key)


def parse_values(info: FieldInfo, raw: Any) -> list[Any]:
    """The values one field is given: text (``1,2,4`` or a range), a list (from a spec file) or a
    single value. Each is parsed and checked against the schema; a ConfigError names the field
    and what is wrong."""
    if isinstance(raw, str):
        values = [v for item in _split(raw) for v in _item(info, item)]
    elif isinstance(raw, (list, tuple)):
        values = [v for item in raw for v in
                  (_item(info, item) if isinstance(item, str) else [_coerce(info, item)])]
    else:
        values = [_coerce(info, raw)]
    if not values:
        raise info.error("is given no values; the grid would be empty")
    if len(values) > 1 and not sweepable(info):
        raise info.error("cannot take a list (only numeric fields and fields with choices can);"
                         f" give one value{_device_hint(info)}")
    for value in values:
        info.check(value)
    seen = set()
    for value in values:
        if value in seen:
            raise info.error(f"lists {info.show(value)} twice")
        seen.add(value)
    return values


def _device_hint(info: FieldInfo) -> str:
    if info.name == "device":
        return "; a sweep places its members with --gpus 0,1 or --device cpu --slots N"
    return ""


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _coerce(info: FieldInfo, value: Any) -> Any:
    """A value from a spec file, as the field's type (TOML gives 4 for a float field's 4.0)."""
    if info.type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _item(info: FieldInfo, text: str) -> list[Any]:
    text = text.strip()
    if info.type is str and info.choices is None:  # a name or a path ("folder:../x")
        return [text]
    if ".." not in text:
        return [info.parse(text)]
    if info.type not in (int, float):
        raise info.error(f"cannot take a range ({text!r}); list its values instead")
    return _range(info, text)


def _range(info: FieldInfo, text: str) -> list[Any]:
    """``A..B``, ``A..B:STEP`` or ``A..B:xFACTOR``, both ends included."""
    bounds, colon, step_text = text.partition(":")
    lo_text, _, hi_text = bounds.partition("..")
    form = f"{info.option} {text!r} is not a range; write A..B, A..B:STEP or A..B:xFACTOR"
    if colon and not step_text.strip():
        raise ConfigError(form, field=info.name)
    try:
        lo, hi = float(lo_text), float(hi_text)
        geometric = step_text.strip().lower().startswith("x")
        step = float(step_text.strip()[1:] if geometric else step_text) if step_text else 1.0
    except ValueError:
        raise ConfigError(form, field=info.name) from None
    if not all(math.isfinite(v) for v in (lo, hi, step)):
        raise ConfigError(form, field=info.name)
    if lo > hi:
        raise info.error(f"range {text!r} runs backwards; write the smaller end first")
    if geometric:
        if step <= 1 or lo <= 0:
            raise info.error(f"range {text!r} needs a factor above 1 and a start above 0")
        count = int(math.floor(math.log(hi / lo, step) + 1e-9)) + 1
    else:
        if step <= 0:
            raise info.error(f"range {text!r} needs a step above 0")
        count = int(math.floor((hi - lo) / step + 1e-9)) + 1
    if count > MAX_AXIS_VALUES:
        raise info.error(f"range {text!r} gives {count:,} values; at most "
                         f"{MAX_AXIS_VALUES:,} (is it a typo?)")
    values = [lo * step**i if geometric else lo + i * step for i in range(count)]
    if info.type is int:
        if not all(float(v).is_integer() for v in values):
            raise info.error(f"range {text!r} gives fractions; this field takes whole numbers")
        return [int(v) for v in values]
    return [float(f"{v:.12g}") for v in values]  # 0.1*3 is 0.3, not 0.30000000000000004


def grid(values: Mapping[str, Sequence[Any]], axes: Sequence[str]) -> Iterator[dict[str, Any]]:
    """The swept values of each member, in grid order (the first axis outermost)."""
    for combo in itertools.product(*(values[name] for name in axes)):
        yield dict(zip(axes, combo, strict=True))


def check_axes_apply(values: Mapping[str, Sequence[Any]], axes: Sequence[str]) -> None:
    """Refuse a swept field that some of the swept objectives do not use (β under H and B):
    those members would repeat each other. A fixed value is fine; it goes to the members whose
    objective uses it (:func:`member_given`)."""
    objectives = list(values.get("objective", [])) if "objective" in axes else []
    for name in axes:
        info = field_info(name)
        unused = [o for o in objectives if not info.applies({"objective": o})]
        if unused:
            raise info.error(f"is swept, but objective {unused[0]} does not use it; make one "
                             "sweep per objective, or give it one value")


def member_given(fixed: Mapping[str, Any], swept: Mapping[str, Any]) -> dict[str, Any]:
    """What one member's config is made from: the fixed values its objective uses (when the
    objective is swept), then its swept values."""
    objective = swept.get("objective")
    kept = {k: v for k, v in fixed.items()
            if objective is None or field_info(k).applies({"objective": objective})}
    return {**kept, **swept}


def member_count(values: Mapping[str, Sequence[Any]], axes: Sequence[str]) -> int:
    return math.prod(len(values[name]) for name in axes)


def label(swept: Mapping[str, Any]) -> str:
    """``beta=4 seed=2``: a member's place in the grid, for names and tables."""
    return " ".join(f"{k}={field_info(k).show(v)}" for k, v in swept.items())
