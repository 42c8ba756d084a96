"""`bvae train` options generated from the one config schema (bvae_tui.engine.config.schema()).

Every TrainConfig field becomes an option named after it (``z_dim`` -> ``--z-dim``) in the help
panel of its group, defaulting to None ("not given") so that a preset's values survive unless the
user overrides them. Typer reads a command's parameters through ``inspect.signature`` and
``typing.get_type_hints``, so :func:`with_config_options` sets both ``__signature__`` and
``__annotations__`` on the command function. Values are checked by TrainConfig.validate, not by
Click, so a bad value is the same one-line error in the CLI and in the TUI form.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

from bvae_tui.engine.config import FieldInfo, schema


def _help(info: FieldInfo) -> str:
    # Parentheses, not brackets: Typer's rich help would read "[...]" as markup and drop it.
    if info.default is None:  # the help says what not giving it means
        return info.help
    default = ("on" if info.default else "off") if info.type is bool else info.show(info.default)
    return f"{info.help} (default: {default})"


def config_parameter(info: FieldInfo, lists: bool = False) -> inspect.Parameter:
    """One keyword parameter whose annotation carries the Typer option of a schema field.

    ``lists`` (`bvae sweep`): every field but a flag is read as text, which the sweep grammar
    parses (a list or a range sweeps the field)."""
    decls = [f"{info.option}/{info.negative_option}"] if info.type is bool else [info.option]
    text = lists and info.type is not bool
    metavar = _metavar(info)
    listed = info.choices or info.widget == "dataset"  # a list, no ranges (a study's data sets)
    if text and (info.type in (int, float) or listed):
        metavar = f"{metavar},…" if listed else f"{metavar}[,…|A..B]"
    option = typer.Option(*decls, help=_help(info), rich_help_panel=info.group,
                          show_default=False, metavar=metavar)
    annotation = Annotated[(str if text else info.type) | None, option]
    return inspect.Parameter(info.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=annotation)


def _metavar(info: FieldInfo) -> str | None:
    if info.type is bool:
        return None
    if info.choices:
        return "|".join(info.choices)
    return {int: "INT", float: "FLOAT", str: "TEXT"}[info.type]


def config_parameters(lists: bool = False) -> list[inspect.Parameter]:
    return [config_parameter(info, lists) for info in schema()]


def config_field_names() -> list[str]:
    return [info.name for info in schema()]


def with_config_options(func: Callable[..., Any], extra: list[inspect.Parameter],
                        lists: bool = False) -> Callable:
    """Give ``func(**values)`` a signature of ``extra`` parameters plus one per config field
    (``lists``: as text, see :func:`config_parameter`)."""
    params = [*extra, *config_parameters(lists)]
    func.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
    func.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    return func
