"""New-run screen: a form generated from the engine's config schema.

Fields, defaults, bounds, choices, help, each field's control (its widget hint, see
widgets/field_widgets.py) and which objective uses it all come from
:func:`bvae_tui.engine.config.schema`; values are checked by :func:`check_field` and
:meth:`TrainConfig.validate` (the code the CLI uses), whose errors name their field, so the form
and `bvae train` cannot drift apart. Launch creates the run directory, starts the detached worker
and opens the monitor.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
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

from bvae_tui.engine.config import PRESETS, FieldInfo, TrainConfig, schema
from bvae_tui.engine.errors import ConfigError
from bvae_tui.engine.runs.store import default_name
from bvae_tui.engine.runs.sweeps.control import default_name as sweep_default_name
from bvae_tui.engine.runs.sweeps.grid import (
    MAX_MEMBERS,
    check_axes_apply,
    grid,
    member_count,
    member_given,
)
from bvae_tui.engine.runs.sweeps.spec import SweepSpec
from bvae_tui.safe_text import plain
from bvae_tui.tui.form_edits import (
    dataset_help,
    edited_fields,
    image_size_problem,
    preset_conflicts,
)
from bvae_tui.tui.form_sweep import base_values, field_values, form_spec, sweep_command_line
from bvae_tui.tui.screens.confirm import ConfirmScreen
from bvae_tui.tui.widgets.choice_field import ChoiceField
from bvae_tui.tui.widgets.device_picker import DevicePicker
from bvae_tui.tui.widgets.field_widgets import field_widget

NO_PRESET = "(none)"

HELP = """
# New run

The form is the `bvae train` options: same names, defaults, bounds and checks. A preset fills
in a paper's setting; it changes only the fields you have not edited (when it would change
one you edited, it asks first); anything you change afterwards wins. Fields the chosen
objective does not use (gamma under H, beta under B, disc_lr under all but factor) are
hidden. Errors show under their field and launch waits until there are none. The line at
the bottom is the same run as a command.

**Sweeps.** A numeric field takes a list or a range (`1,2,4,8`, `1..5`, `1..16:x2`). In a
choice field `←`/`→` move, `enter` picks one choice and `space` adds the one under the cursor.
Every field given several values is an axis of a grid: the form shows the member count and the
`bvae sweep` command, and `ctrl+r` launches the sweep (one member at a time per GPU, or on the
CPU) and opens its screen; a grid of more than 10,000 members asks first.

| key | action |
|---|---|
| `tab` / `shift+tab` | next / previous field |
| `ctrl+r` | launch (starts a detached worker, opens its monitor) |
| `esc` | back without launching (asks first when the form has edits) |
| `ctrl+q` | quit the app (`q` does not quit here) |

Device: `auto` takes the GPU with most free memory when training starts; the list refreshes
every 2 s (bar: memory in use; then free / total and utilisation).
"""


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
        self.inputs: dict[str, Any] = {}  # name -> its control (see widgets/field_widgets.py)
        self.errors: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self.axes: dict[str, list[Any]] = {}  # fields given several values: a sweep
        self._loading = False
        self.preset = NO_PRESET  # the preset applied last: the base that "edited" compares to

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
                yield Input(placeholder="default: the dataset and objective", compact=True,
                            id="run-name")
            group = None
            for info in self.fields:
                if info.group != group:
                    group = info.group
                    yield Static(group, classes="group-title")
                with Horizontal(classes="row", id=f"row-{info.name}"):
                    yield Label(info.name, classes="field-label")
                    self.inputs[info.name] = field_widget(info, self.data_dir)
                    yield self.inputs[info.name]
                yield Static("", classes="field-error", id=f"err-{info.name}")
        yield Static(id="form-error", classes="error")
        yield Static(id="form-hint", classes="hint")
        yield Static(id="form-command", classes="command")
        with Horizontal(classes="buttons"):
            yield Button("Launch (ctrl+r)", variant="success", id="launch", compact=True)
            yield Button("Back (esc)", id="back", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        for info in self.fields:
            self.query_one(f"#err-{info.name}").display = False
        # Every control at its default, as a preset sets them (the device list highlights
        # 'auto' this way, so that the arrows move from there).
        self.apply_preset(NO_PRESET)
        self.inputs[self.fields[0].name].focus()
        self.revalidate()

    # Reading and checking the form ---------------------------------------------------------------
    def raw_values(self) -> dict[str, Any]:
        """Each field's control as it stands: text still to parse, or a typed value."""
        return {name: control.field_value for name, control in self.inputs.items()}

    def revalidate(self) -> bool:
        """Parse and check every field; show errors inline. True when the form is launchable."""
        if self._loading:
            return False
        raw = self.raw_values()
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        axes: dict[str, list[Any]] = {}
        for info in self.fields:
            try:  # each field alone against the schema's own checks: one message per field
                found = field_values(info, raw[info.name])
            except ConfigError as exc:
                errors[exc.field or info.name] = str(exc)
                continue
            values[info.name] = found[0]
            if len(found) > 1:  # a list: the form launches a sweep
                axes[info.name] = found
        general = ""
        sized_ok: dict[tuple[str, int], str | None] = {}
        if not errors:
            try:  # the whole config once more (each member's), for checks across fields
                check_axes_apply(axes, list(axes))
                for combo in grid(axes, list(axes)) if member_count(axes, list(axes)) <= 500 \
                        else [{}]:
                    cfg = TrainConfig.from_dict(member_given(values, combo)).validate()
                    # The data set's own sizes: marked here, not only refused at launch (once
                    # per pair: a folder's check reads its factors.csv header).
                    pair = (cfg.dataset, cfg.image_size)
                    if pair not in sized_ok:
                        sized_ok[pair] = image_size_problem(*pair)
                    if sized_ok[pair]:
                        raise ConfigError(sized_ok[pair], field="image_size")
            except ConfigError as exc:
                if exc.field:
                    errors[exc.field] = str(exc)
                else:
                    general = str(exc)
        self.errors, self.values, self.axes = errors, values, axes
        objectives = axes.get("objective") or [values.get("objective")]
        for info in self.fields:
            err = self.query_one(f"#err-{info.name}", Static)
            message = errors.get(info.name, "")
            # A message may quote the value typed: plain() text, never markup.
            err.update(Text("✗ " + plain(message), style="bold red") if message else "")
            err.display = bool(message)
            # A field no chosen objective uses is hidden, unless it needs fixing.
            used = any(info.applies({"objective": o}) for o in objectives)
            self.query_one(f"#row-{info.name}").display = used or bool(message)
        summary = self.query_one("#form-error", Static)
        if errors or general:
            n = len(errors)
            summary.update(Text(plain(general or f"{n} field{'s' if n > 1 else ''} to fix "
                                      f"before launch: {', '.join(errors)}"), style="bold red"))
        else:
            summary.update("")
        command = Text(plain(self.command()), style="cyan")  # the name field's text in it
        if axes:
            count = member_count(axes, list(axes))
            asks = f" (asks first: more than {MAX_MEMBERS:,})" if count > MAX_MEMBERS else ""
            command = Text.assemble((f"a sweep of {count:,} members ({' x '.join(axes)}); "
                                     f"ctrl+r launches it{asks}\n", "bold"), command)
        self.query_one("#form-command", Static).update(command)
        self._update_placeholder()
        return not errors and not general

    def _update_placeholder(self) -> None:
        """The name field's placeholder: the name the run (or sweep) gets without one."""
        try:
            name = (sweep_default_name(self.sweep_spec()) if self.axes
                    else default_name(TrainConfig.from_dict(self.values)))
        except (ConfigError, ValueError, TypeError, KeyError):
            return  # a form with errors keeps the last one
        self.query_one("#run-name", Input).placeholder = f"default: {plain(name)}"

    def edited(self) -> list[str]:
        """The fields (and the name) that differ from what the current preset gives."""
        out = edited_fields(self.fields, self.raw_values(), self.preset)
        if self.query_one("#run-name", Input).value.strip():
            out.append("name")
        return out

    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.values).validate()

    def _preset_and_name(self) -> tuple[str | None, str | None]:
        preset = self.query_one("#preset", Select).value
        name = self.query_one("#run-name", Input).value.strip()
        return (str(preset) if preset != NO_PRESET else None), (name or None)

    def sweep_spec(self) -> SweepSpec:
        """The sweep the form's lists make (see :mod:`bvae_tui.tui.form_sweep`)."""
        return form_spec(self.fields, self.values, self.axes, *self._preset_and_name())

    def command(self) -> str:
        """The `bvae train` (or, with lists, `bvae sweep`) command that does the same."""
        if self.axes:
            raw = self.raw_values()  # a long list is spelt as the range typed
            return sweep_command_line(self.fields, self.sweep_spec(),
                                      {k: v for k, v in raw.items() if isinstance(v, str)})
        return command_line(self.fields, self.values, *self._preset_and_name())

    # Events -----------------------------------------------------------------------------------
    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    @on(DevicePicker.Changed)
    @on(ChoiceField.Changed)
    def _changed(self, event: Any) -> None:
        control = getattr(event, "control", None)
        if control is not None and control.id == "preset":
            self.choose_preset(str(event.value))
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
                    extra = f"  [{info.show(info.min) if info.min is not None else ''}…" \
                            f"{info.show(info.max) if info.max is not None else ''}]"
                text = dataset_help() if info.widget == "dataset" \
                    else info.help
                hint.update(Text(f"{info.option}: {text}{extra}", style="dim"))
                return
            widget = widget.parent  # type: ignore[assignment]
        hint.update("")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "launch":
            self.action_launch()
        elif event.button.id == "back":
            self.action_cancel()

    def choose_preset(self, preset: str) -> None:
        """A preset changes the fields the user has not edited; when it would change one they
        did, it asks: overwrite those too, or keep them."""
        if preset == self.preset:
            return
        edited = [n for n in self.edited() if n != "name"]
        clash = preset_conflicts(self.fields, self.raw_values(), edited, preset)
        if not clash:
            self.apply_preset(preset, keep=edited)
            return

        def answered(overwrite: bool | None) -> None:
            self.apply_preset(preset, keep=[] if overwrite else edited)
            self.revalidate()

        question = Text.assemble("Preset ", (plain(preset), "bold"), " sets ",
                                 (", ".join(clash), "bold"), ", which you edited. Overwrite "
                                 "your edits? (No keeps them and applies the rest.)")
        self.app.push_screen(ConfirmScreen(question, yes="Overwrite"), answered)

    def apply_preset(self, preset: str, keep: Sequence[str] = ()) -> None:
        """Set every field but those in ``keep`` to the defaults overridden by the preset."""
        values = base_values(self.fields, preset)
        self.preset = preset
        self._loading = True
        try:
            for info in self.fields:
                if info.name not in keep:
                    self.set_field(info.name, values[info.name])
        finally:
            self._loading = False

    def set_field(self, name: str, value: Any) -> None:
        """Put a value (or the text a user would type) into a field's control."""
        self.inputs[name].set_field_value(value)

    # Actions ----------------------------------------------------------------------------------
    def action_cancel(self) -> None:
        edited = self.edited()
        if not edited:
            self.app.pop_screen()
            return

        def answered(discard: bool | None) -> None:
            if discard and self.app.screen is self:
                self.app.pop_screen()

        shown = ", ".join(edited[:6]) + (f" (+{len(edited) - 6})" if len(edited) > 6 else "")
        self.app.push_screen(ConfirmScreen(Text.assemble(
            "Discard the form? You edited ", (shown, "bold"), "."), yes="Discard"), answered)

    def action_no_quit(self) -> None:
        self.notify("q does not quit from the form: esc goes back, ctrl+q quits",
                    severity="warning")

    def action_launch(self) -> None:
        if not self.revalidate():
            first = next(iter(self.errors), None)
            if first:
                self.inputs[first].focus()
            self.notify("fix the fields marked ✗ first", severity="error")
            return
        if self.axes:
            spec = self.sweep_spec()
            count = spec.count()
            if count <= MAX_MEMBERS:
                self.app.launch_sweep(spec, on_launched=self._sweep_launched)
                return

            def answered(yes: bool | None) -> None:  # the CLI's --yes, asked in the form
                if yes:
                    self.app.launch_sweep(spec, on_launched=self._sweep_launched, yes=True)

            self.app.push_screen(ConfirmScreen(Text.assemble(
                "Create a sweep of ", (f"{count:,}", "bold"), f" members (more than "
                f"{MAX_MEMBERS:,})? Each is a run directory."), yes="Create"), answered)
            return
        name = self.query_one("#run-name", Input).value.strip() or None
        self.app.launch_run(self.config(), name, on_launched=self._launched)

    def _sweep_launched(self, sweep_path: Path) -> None:
        if self.app.screen is self:
            self.app.pop_screen()
        self.app.open_sweep(sweep_path)

    def _launched(self, run_path: Path) -> None:
        self.app.pop_screen()
        self.app.open_monitor(run_path)


def command_line(fields: Sequence[FieldInfo], values: dict[str, Any], preset: str | None,
                  name: str | None) -> str:
    """The `bvae train --detach` line for these values: the preset, then every value that
    differs from what the preset (or the default) gives, spelt as the CLI spells it, leaving
    out the fields the objective does not use (the CLI refuses them)."""
    base = base_values(fields, preset)
    parts = ["bvae", "train", "--detach"]
    if preset in PRESETS:
        parts += ["--preset", str(preset)]
    if name:
        parts += ["--name", name]
    for info in fields:
        if (info.name in values and values[info.name] != base.get(info.name)
                and info.applies(values)):
            parts += info.words(values[info.name])
    return " ".join(shlex.quote(p) for p in parts)
