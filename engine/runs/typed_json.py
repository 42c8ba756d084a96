"""Typed JSON objects: dataclasses with one tolerant reader and one checked writer.

A :class:`Record` subclass declares its JSON fields as annotated dataclass fields.
``from_dict`` never raises: a missing key reads as the field's default, a value of the wrong type
(or a list or map holding one) reads as missing, and unknown keys are kept in ``extra`` and
written back by ``to_dict``, which writes every field and refuses (TypeError) a value its reader
would drop. The run directory's records are in :mod:`bvae_tui.engine.runs.records`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

_MISSING: Any = object()
REQUIRED: Any = dataclasses.MISSING  # a field without a default
R = TypeVar("R", bound="Record")


def doc_field(doc: str, default: Any = None, factory: Callable[[], Any] | None = None) -> Any:
    """A field with its meaning (the generated document shows it)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


def _read_bool(value: Any) -> Any:
    return value if isinstance(value, bool) else _MISSING


def _read_int(value: Any) -> Any:
    return value if isinstance(value, int) and not isinstance(value, bool) else _MISSING


def _read_float(value: Any) -> Any:
    if type(value) is float:
        return value if math.isfinite(value) else _MISSING  # strict JSON has no NaN / inf
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return _MISSING
    try:
        return float(value)
    except OverflowError:  # an integer too large for a float (a hand-edited file)
        return _MISSING


def _read_str(value: Any) -> Any:
    return value if isinstance(value, str) else _MISSING


def _read_any(value: Any) -> Any:
    return value


_SCALARS: dict[Any, Callable[[Any], Any]] = {
    bool: _read_bool, int: _read_int, float: _read_float, str: _read_str, Any: _read_any}


@functools.cache
def _reader(tp: Any) -> Callable[[Any], Any]:
    """A function that returns its argument as the annotated type ``tp`` (ints as floats where
    a float is wanted, tuples as lists), or ``_MISSING`` when it is not one. Built once per
    type: every status.json of every run goes through these each second in the TUI."""
    if tp in _SCALARS:
        return _SCALARS[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        read_inner = _reader(inner)
        return lambda value: None if value is None else read_inner(value)
    if origin is list:
        read_item = _reader(args[0])

        def read_list(value: Any) -> Any:
            if not isinstance(value, (list, tuple)):
                return _MISSING
            if (read_item is _read_float and all(type(v) is float for v in value)
                    and math.isfinite(sum(value))):  # no NaN or infinity among them
                return list(value)  # the common case (KL per latent), without a call per item
            items = [read_item(v) for v in value]
            return _MISSING if any(i is _MISSING for i in items) else items
        return read_list
    if origin is dict:
        read_entry = _reader(args[1])

        def read_dict(value: Any) -> Any:
            if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                return _MISSING
            if read_entry is _read_any:
                return dict(value)  # e.g. the config: any JSON value will do
            entries = {k: read_entry(v) for k, v in value.items()}
            return _MISSING if any(v is _MISSING for v in entries.values()) else entries
        return read_dict
    raise TypeError(f"no reader for {tp!r}")


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """The JSON fields of a record class and their resolved types, in declaration order."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name != "extra"}


@functools.cache
def _field_readers(cls: type) -> dict[str, Callable[[Any], Any]]:
    return {name: _reader(tp) for name, tp in field_types(cls).items()}


@dataclass(kw_only=True)
class Record:
    """One JSON object with typed fields; keys this version does not know are kept in ``extra``."""

    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls: type[R], data: Any) -> R:
        """The only reader: tolerant of older, newer and damaged files (see the module doc)."""
        readers = _field_readers(cls)
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in (data.items() if isinstance(data, Mapping) else ()):
            reader = readers.get(key)
            if reader is not None:
                read = reader(value)
                if read is not _MISSING:
                    known[key] = read
            else:
                extra[key] = value
        return cls(**known, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """The only writer: every field, then the unknown keys that were read."""
        out: dict[str, Any] = {}
        for name, read in _field_readers(type(self)).items():
            value = getattr(self, name)
            if read(value) is _MISSING:
                tp = field_types(type(self))[name]
                raise TypeError(f"{type(self).__name__}.{name} = {value!r} is not {tp}")
            out[name] = value
        out.update((k, v) for k, v in self.extra.items() if k not in out)
        return out


_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "true/false", Any: "any"}


def json_type(tp: Any) -> str:
    """How a field's annotated type looks in JSON, e.g. ``list of number, or null``."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return f"{json_type(inner)}, or null"
    if typing.get_origin(tp) is list:
        return f"list of {json_type(args[0])}"
    if typing.get_origin(tp) is dict:
        return "object" if args[1] is Any else f"object of {json_type(args[1])}"
    return _JSON_TYPES[tp]
