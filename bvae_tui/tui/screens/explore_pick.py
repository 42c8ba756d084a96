"""The Explore screen's image picker: a dataset index, or the image with given factor classes.

On a dataset with factors the form has a field per factor, filled with the current image's
classes (a class by its number, or by its name where it has one: shape = heart); changing any of
them finds the image with those classes. A typed index wins over the factors. A bad value is
said under the form, which stays open. Parsing is the engine's (the same as `bvae explore
--factors`), so both faces accept and refuse the same things.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from bvae_tui.errors import UserError
from bvae_tui.safe_text import plain


class PickImageScreen(ModalScreen[int | None]):
    CSS_PATH = "explore.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, explorer: Any, index: int | None) -> None:
        super().__init__()
        self.explorer = explorer
        self.index = index
        ds = explorer.dataset
        self.factors: list[tuple[str, int]] = [
            (str(n), int(s)) for n, s in zip(ds.factor_names, ds.factor_sizes, strict=True)
            if int(s) > 1] if explorer.has_factors else []
        self.current = explorer.classes_of(index) if self.factors and index is not None \
            else None

    def compose(self) -> ComposeResult:
        from bvae_tui.engine.analysis.explore import class_label

        ds = self.explorer.dataset
        with Vertical(id="pick-box"):
            yield Static(Text(f"source image of {plain(ds.name)} ({ds.n} images)",
                              style="bold"))
            with Horizontal(classes="pick-row"):
                yield Label("index", classes="pick-label")
                yield Input(placeholder=f"0..{ds.n - 1} (blank: by the factors below)",
                            id="pick-index")
            names = list(ds.factor_names)
            for name, size in self.factors:
                k = names.index(name)
                value = class_label(name, size, self.current[k], ds) if self.current else ""
                with Horizontal(classes="pick-row"):
                    yield Label(Text(plain(name)), classes="pick-label")  # text, not markup
                    yield Input(value=value, placeholder=self._hint(name, size, ds),
                                id=f"pick-f{k}")
            yield Static(id="pick-error")
            yield Static(Text("enter: show it · esc: cancel", style="dim"))

    @staticmethod
    def _hint(name: str, size: int, dataset: Any) -> str:
        from bvae_tui.engine.analysis.explore import class_names

        names = class_names(name, size, dataset)
        return f"0..{size - 1}" + (f" or {'/'.join(names)}" if names else "")

    def on_mount(self) -> None:
        self.query_one("#pick-index", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            index = self.chosen_index()
        except UserError as exc:
            self.query_one("#pick-error", Static).update(Text(plain(exc)))
            return
        self.dismiss(index)

    def chosen_index(self) -> int:
        """The index typed, else the index of the image with the classes in the fields."""
        from bvae_tui.engine.analysis.explore import parse_class
        from bvae_tui.engine.errors import ConfigError

        text = self.query_one("#pick-index", Input).value.strip()
        if text:
            if not text.isdigit():
                raise ConfigError(f"index must be a number 0..{self.explorer.dataset.n - 1}")
            return self.explorer.check_index(int(text))
        if not self.factors:
            raise ConfigError("type an index: this dataset has no factors to pick by")
        ds = self.explorer.dataset
        chosen: dict[int, int] = {}
        for name, _size in self.factors:
            k = list(ds.factor_names).index(name)
            value = self.query_one(f"#pick-f{k}", Input).value.strip()
            if value:
                chosen[k] = parse_class(ds, name, value, option="factor")
        return self.explorer.index_for(chosen, self.current)

    def action_cancel(self) -> None:
        self.dismiss(None)
