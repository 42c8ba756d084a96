"""New-run screen: a form generated from the engine's config schema.

Fields, defaults, bounds, choices and help all come from :func:`bvae_tui.engine.config.schema`;
values are checked by :meth:`TrainConfig.validate` (the same code the CLI uses), so the form and
`bvae train` cannot drift apart. Launch creates the run directory, starts the detached worker and
opens the monitor.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Footer, Input, Label, Select, Static

from bvae_tui.engine.config import PRESETS, FieldInfo, TrainConfig, parse_value, schema
from bvae_tui.errors import UserError
from bvae_tui.tui.widgets.device_picker import DevicePicker

NO_PRESET = "(none)"
FOLDER = "folder:"

HELP = """
# New run

The form is the `bvae train` options: same names, defaults, bounds and checks. A preset fills
in a paper's setting; anything you change afterwards wins. Errors show under their field and
launch waits until there are none. The line at the bottom is the same run as a command.

| key | action |
|---|---|
| `tab` / `shift+tab` | next / previous field |
| `ctrl+r` | launch (starts a detached worker, opens its monitor) |
| `esc` | back without launching |
| `ctrl+q` | quit the app (`q` does not quit here) |

Device: `auto` takes the GPU with most free memory when training starts; the list refreshes
every 2 s (bar: memory in use; then free / total and utilisation).
"""


def dataset_options(data_dir: Path) -> list[tuple[Text, str]]:
    """Dataset choices labelled with whether each is prepared (and from which source)."""
    from bvae_tui.datasets.loader import dataset_status
    from bvae_tui.datasets.registry import dataset_names

    options = []
    for name in dataset_names():
        label = Text(f"{name:<14}")
        try:
            st = dataset_status(name, data_dir)
        except (UserError, OSError) as exc:
            label.append(f" ? {exc}", style="red")
        else:
            if st.get("prepared"):
                label.append(f" ✓ prepared ({st.get('source') or '?'})", style="green")
            else:
                label.append(" not prepared yet", style="yellow")
        options.append((label, name))
    options.append((Text("folder:PATH    any folder of images"), FOLDER))
    return options


class NewRunScreen(Screen):
    HELP = HELP
    BINDINGS = [
        Binding("ctrl+r", "launch", "Launch", priority=True),
        Binding("escape", "cancel", "Back"),
        # Not the app's quit: a stray q on a select or checkbox would lose the form.
        Binding("q", "no_quit", "Quit", show=False),
    ]

    def __init__(self, data_dir: Path) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.fields: list[FieldInfo] = schema()
        self.by_name = {f.name: f for f in self.fields}
        self.errors: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self._loading = False

    # Layout -----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static("New run  [dim]tab: next field · ctrl+r: launch · esc: back[/dim]",
                     classes="topbar")
        with VerticalScroll(id="form"):
            with Horizontal(classes="row"):
                yield Label("preset", classes="field-label")
                yield Select([(NO_PRESET, NO_PRESET), *[(p, p) for p in PRESETS]],
                             value=NO_PRESET, allow_blank=False, compact=True, id="preset")
            with Horizontal(classes="row"):
                yield Label("name", classes="field-label")
                yield Input(placeholder="default: dataset-objective-beta", compact=True,
                            id="run-name")
            group = None
            for info in self.fields:
                if info.group != group:
                    group = info.group
                    yield Static(group, classes="group-title")
                yield from self._field(info)
        yield Static(id="form-error", classes="error")
        yield Static(id="form-hint", classes="hint")
        yield Static(id="form-command", classes="command")
        with Horizontal(classes="buttons"):
            yield Button("Launch (ctrl+r)", variant="success", id="launch", compact=True)
            yield Button("Back (esc)", id="back", compact=True)
        yield Footer()

    def _field(self, info: FieldInfo) -> ComposeResult:
        wid = f"f-{info.name}"
        with Horizontal(classes="row", id=f"row-{info.name}"):
            yield Label(info.name, classes="field-label")
            if info.name == "dataset":
                yield Select(dataset_options(self.data_dir), value=self._dataset_choice(
                    str(info.default)), allow_blank=False, compact=True, id=wid)
            elif info.name == "device":
                yield Static(str(info.default), id=wid)
            elif info.choices:
                yield Select([(c, c) for c in info.choices], value=info.default,
                             allow_blank=False, compact=True, id=wid)
            elif info.type is bool:
                yield Checkbox("enable", value=bool(info.default), id=wid)
            else:
                yield Input(_show(info.default), compact=True, id=wid)
        if info.name == "dataset":
            with Horizontal(classes="row", id="row-folder"):
                yield Label("folder path", classes="field-label")
                yield Input(placeholder="/path/to/images", compact=True, id="f-folder")
        if info.name == "device":
            yield DevicePicker(str(info.default), id="device-picker")
        yield Static("", classes="field-error", id=f"err-{info.name}")

    def on_mount(self) -> None:
        self.query_one("#row-folder").display = False
        for info in self.fields:
            self.query_one(f"#err-{info.name}").display = False
        self.query_one("#f-dataset").focus()
        self.revalidate()

    @staticmethod
    def _dataset_choice(name: str) -> str:
        return FOLDER if name.startswith(FOLDER) else name

    # Reading and checking the form ---------------------------------------------------------------
    def raw_value(self, info: FieldInfo) -> Any:
        if info.name == "device":
            return self.query_one(DevicePicker).value
        widget = self.query_one(f"#f-{info.name}")
        if info.name == "dataset":
            choice = widget.value  # type: ignore[attr-defined]
            if choice == FOLDER:
                return FOLDER + self.query_one("#f-folder", Input).value.strip()
            return choice
        if isinstance(widget, Checkbox):
            return widget.value
        if isinstance(widget, Select):
            return widget.value
        return widget.value  # type: ignore[attr-defined]

    def revalidate(self) -> bool:
        """Parse and check every field; show errors inline. True when the form is launchable."""
        if self._loading:
            return False
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        for info in self.fields:
            raw = self.raw_value(info)
            try:
                value = parse_value(info, raw) if isinstance(raw, str) and info.type is not str \
                    else raw
                # Each field alone against the schema's own checks: one message per field.
                TrainConfig(**{info.name: value}).validate()
            except UserError as exc:
                errors[info.name] = str(exc)
                continue
            except TypeError as exc:
                errors[info.name] = f"{info.option}: {exc}"
                continue
            values[info.name] = value
        if "dataset" not in errors:
            try:
                from bvae_tui.datasets.registry import get_spec

                get_spec(values["dataset"])
            except UserError as exc:
                errors["dataset"] = str(exc)
            else:
                folder_error = _folder_error(str(values["dataset"]))
                if folder_error:
                    errors["dataset"] = folder_error
        general = ""
        if not errors:
            try:  # the whole config once more, for checks that involve several fields
                TrainConfig.from_dict(values).validate()
            except UserError as exc:
                name = _field_of(str(exc), self.fields)
                if name:
                    errors[name] = str(exc)
                else:
                    general = str(exc)
        self.errors, self.values = errors, values
        for info in self.fields:
            err = self.query_one(f"#err-{info.name}", Static)
            message = errors.get(info.name, "")
            err.update(Text("✗ " + message, style="bold red") if message else "")
            err.display = bool(message)
        summary = self.query_one("#form-error", Static)
        if errors or general:
            n = len(errors)
            summary.update(Text(general or f"{n} field{'s' if n > 1 else ''} to fix before "
                                f"launch: {', '.join(errors)}", style="bold red"))
        else:
            summary.update("")
        self.query_one("#form-command", Static).update(Text(self.command(), style="cyan"))
        return not errors and not general

    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.values).validate()

    def command(self) -> str:
        """The `bvae train` command line that starts the same run."""
        preset = self.query_one("#preset", Select).value
        base: dict[str, Any] = {f.name: f.default for f in self.fields}
        parts = ["bvae", "train", "--detach"]
        if preset != NO_PRESET and preset in PRESETS:
            parts += ["--preset", str(preset)]
            base.update(PRESETS[str(preset)])
        name = self.query_one("#run-name", Input).value.strip()
        if name:
            parts += ["--name", name]
        for info in self.fields:
            if info.name not in self.values:
                continue
            value = self.values[info.name]
            if value == base.get(info.name):
                continue
            if info.type is bool:
                parts.append(info.option if value else f"--no-{info.option[2:]}")
            else:
                parts += [info.option, _show(value)]
        return " ".join(shlex.quote(p) for p in parts)

    # Events -----------------------------------------------------------------------------------
    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    @on(DevicePicker.Changed)
    def _changed(self, event: Any) -> None:
        control = getattr(event, "control", None)
        if control is not None and control.id == "preset":
            self.apply_preset(str(event.value))
        if isinstance(event, DevicePicker.Changed):
            self.query_one("#f-device", Static).update(event.value)
        if control is not None and control.id == "f-dataset":
            self.query_one("#row-folder").display = event.value == FOLDER
        self.revalidate()

    def on_descendant_focus(self, event: Any) -> None:
        widget: Widget | None = event.widget
        hint = self.query_one("#form-hint", Static)
        while widget is not None and widget is not self:
            wid = widget.id or ""
            if wid.startswith("f-") and wid[2:] in self.by_name:
                info = self.by_name[wid[2:]]
                extra = ""
                if info.min is not None or info.max is not None:
                    extra = f"  [{_show(info.min) if info.min is not None else ''}…" \
                            f"{_show(info.max) if info.max is not None else ''}]"
                hint.update(Text(f"{info.option}: {info.help}{extra}", style="dim"))
                return
            if wid == "device-picker":
                hint.update(Text("--device: " + self.by_name["device"].help, style="dim"))
                return
            widget = widget.parent  # type: ignore[assignment]
        hint.update("")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "launch":
            self.action_launch()
        elif event.button.id == "back":
            self.action_cancel()

    def apply_preset(self, preset: str) -> None:
        """Set every field to the defaults overridden by the preset."""
        values = {f.name: f.default for f in self.fields}
        if preset in PRESETS:
            values.update(PRESETS[preset])
        self._loading = True
        try:
            for info in self.fields:
                self.set_field(info.name, values[info.name])
        finally:
            self._loading = False

    def set_field(self, name: str, value: Any) -> None:
        """Put a value into a field's widget (also used by tests)."""
        info = self.by_name[name]
        if name == "device":
            self.query_one(DevicePicker).select(str(value))
            return
        widget = self.query_one(f"#f-{name}")
        if name == "dataset":
            text = str(value)
            widget.value = self._dataset_choice(text)  # type: ignore[attr-defined]
            if text.startswith(FOLDER):
                self.query_one("#f-folder", Input).value = text[len(FOLDER):]
            return
        if isinstance(widget, Checkbox):
            widget.value = bool(value)
        elif isinstance(widget, Select):
            widget.value = value
        else:
            widget.value = _show(value) if info.type is not str else str(value)  # type: ignore

    # Actions ----------------------------------------------------------------------------------
    def action_cancel(self) -> None:
        self.app.pop_screen()

    def action_no_quit(self) -> None:
        self.notify("q does not quit from the form: esc goes back, ctrl+q quits",
                    severity="warning")

    def action_launch(self) -> None:
        if not self.revalidate():
            first = next(iter(self.errors), None)
            if first:
                target = self.query_one(f"#f-{first}") if first != "device" else \
                    self.query_one(DevicePicker)
                target.focus()
            self.notify("fix the fields marked ✗ first", severity="error")
            return
        name = self.query_one("#run-name", Input).value.strip() or None
        self.app.launch_run(self.config(), name, on_launched=self._launched)

    def _launched(self, run_path: Path) -> None:
        self.app.pop_screen()
        self.app.open_monitor(run_path)


def _folder_error(dataset: str) -> str:
    """Why a ``folder:PATH`` dataset cannot train ('' when it can, or is not a folder): checked
    here, before launch, so that a typo does not make a failed run."""
    if not dataset.startswith(FOLDER):
        return ""
    raw = dataset[len(FOLDER):].strip()
    path = Path(raw).expanduser()
    if not path.exists():
        return f"folder {raw} does not exist"
    if not path.is_dir():
        return f"{raw} is not a folder"
    return ""


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _field_of(message: str, fields: list[FieldInfo]) -> str | None:
    """The field a validation message is about (messages start with its option)."""
    for info in sorted(fields, key=lambda f: -len(f.option)):
        if message.startswith(info.option):
            return info.name
    return None
