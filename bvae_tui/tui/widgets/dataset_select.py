"""Dataset picker: the registry's datasets, each marked prepared or not, or any folder of images.

Choosing ``folder:PATH`` opens a path entry under the list; :attr:`DatasetField.field_value` is
the dataset name the config takes (``dsprites``, ``folder:/data/images``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Select

from bvae_tui.engine.config import FieldInfo
from bvae_tui.errors import UserError
from bvae_tui.safe_text import plain
from bvae_tui.tui.form_edits import not_prepared_note

FOLDER = "folder:"


def dataset_options(data_dir: Path) -> list[tuple[Text, str]]:
    """Dataset choices labelled with whether each is prepared (and from which source)."""
    from bvae_tui.datasets.loader import dataset_status
    from bvae_tui.datasets.registry import dataset_names

    options = []
    names = dataset_names()
    width = max(14, *(len(n) for n in names))  # the notes line up after the longest name
    for name in names:
        label = Text(f"{name:<{width}}")
        try:
            st = dataset_status(name, data_dir)
        except (UserError, OSError) as exc:
            label.append(f" ? {plain(exc)}", style="red")  # may quote a path
        else:
            if st.get("prepared"):
                label.append(f" ✓ prepared ({plain(st.get('source')) or '?'})", style="green")
            else:  # and what launching it does then
                label.append(f" {not_prepared_note(name, data_dir)}", style="yellow")
        options.append((label, name))
    options.append((Text(f"{'folder:PATH':<{width}} any folder of images"), FOLDER))
    return options


def _choice(name: str) -> str:
    return FOLDER if name.startswith(FOLDER) else name


class DatasetField(Vertical):
    """A select of the datasets, plus a folder path row shown for ``folder:PATH``."""

    DEFAULT_CSS = """
    DatasetField { height: auto; width: 1fr; }
    DatasetField > #row-folder { height: auto; }
    """

    def __init__(self, info: FieldInfo, data_dir: Path, *, id: str) -> None:
        super().__init__(id=id)
        self.default = str(info.default)
        self.data_dir = data_dir

    def compose(self) -> ComposeResult:
        yield Select(dataset_options(self.data_dir), value=_choice(self.default),
                     allow_blank=False, compact=True)
        with Horizontal(classes="row", id="row-folder"):
            yield Label("folder path", classes="field-label")
            yield Input(placeholder="/path/to/images", compact=True, id="f-folder")

    def on_mount(self) -> None:
        self._show_folder_row()

    @on(Select.Changed)
    def _choice_changed(self) -> None:  # the form hears the change too
        self._show_folder_row()

    def _show_folder_row(self) -> None:
        self.query_one("#row-folder").display = self.query_one(Select).value == FOLDER

    @property
    def field_value(self) -> str:
        choice = str(self.query_one(Select).value)
        if choice == FOLDER:
            return FOLDER + self.query_one("#f-folder", Input).value.strip()
        return choice

    def set_field_value(self, value: Any) -> None:
        text = str(value)
        self.query_one(Select).value = _choice(text)
        if text.startswith(FOLDER):
            self.query_one("#f-folder", Input).value = text[len(FOLDER):]
        self._show_folder_row()

    def focus(self, scroll_visible: bool = True) -> DatasetField:
        self.query_one(Select).focus(scroll_visible)
        return self
