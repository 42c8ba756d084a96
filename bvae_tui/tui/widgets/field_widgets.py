"""Form controls for config fields, picked by the schema's widget hint (``FieldInfo.widget``).

Every control has ``field_value`` (what the form checks: the text of a :class:`TextField`, which
the schema parses, or the typed value of the others) and ``set_field_value(value)``. The hint is
a plain string so that the engine stays free of Textual; this module is where it becomes a widget.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.widget import Widget
from textual.widgets import Checkbox, Input

from bvae_tui.engine.config import FieldInfo
from bvae_tui.tui.widgets.choice_field import ChoiceField
from bvae_tui.tui.widgets.dataset_select import DatasetField
from bvae_tui.tui.widgets.device_picker import DeviceField


class TextField(Input):
    """A one-line text entry; the schema parses and checks its text (for a numeric field, a
    list or a range sweeps it: ``1,2,4``, ``1..5``)."""

    def __init__(self, info: FieldInfo, *, id: str) -> None:
        super().__init__(info.show(info.default), compact=True, id=id)
        self.info = info

    @property
    def field_value(self) -> str:
        return self.value

    def set_field_value(self, value: Any) -> None:
        self.value = self.info.show(value)


class ToggleField(Checkbox):
    """On or off."""

    def __init__(self, info: FieldInfo, *, id: str) -> None:
        super().__init__("enable", value=bool(info.default), id=id)

    @property
    def field_value(self) -> bool:
        return self.value

    def set_field_value(self, value: Any) -> None:
        self.value = bool(value)


FIELD_WIDGETS: dict[str, Callable[[FieldInfo, str, Path], Widget]] = {
    "text": lambda info, wid, _data_dir: TextField(info, id=wid),
    "choice": lambda info, wid, _data_dir: ChoiceField(info, id=wid),
    "toggle": lambda info, wid, _data_dir: ToggleField(info, id=wid),
    "dataset": lambda info, wid, data_dir: DatasetField(info, data_dir, id=wid),
    "device": lambda info, wid, _data_dir: DeviceField(info, id=wid),
}


def field_widget(info: FieldInfo, data_dir: Path) -> Widget:
    """The control for a schema field, with id ``f-NAME``, chosen by its widget hint."""
    try:
        make = FIELD_WIDGETS[info.widget]
    except KeyError:
        raise ValueError(f"field {info.name}: no widget for hint {info.widget!r}") from None
    return make(info, f"f-{info.name}", data_dir)
