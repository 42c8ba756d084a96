"""Device picker: every GPU NVML reports (name, free / total memory bar, utilisation), the CPU;
and :class:`DeviceField`, the picker as the new-run form's ``device`` field.

NVML is read in a thread worker every couple of seconds (a call can block for a while on a busy
driver); without NVML the picker shows the reason on one line and offers the CPU alone.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from bvae_tui.engine.config import FieldInfo
from bvae_tui.safe_text import as_text, plain
from bvae_tui.tui.messages import DevicesUpdated
from bvae_tui.tui.widgets.kl_bars import bar

REFRESH_SECONDS = 2.0
GB = 1024**3


def gpu_label(gpu: Any, width: int = 10) -> Text:
    """``GPU 0 NAME ▕bar▏ 60.1/79.6 GB free  35%`` (the bar shows memory in use)."""
    total = max(int(getattr(gpu, "memory_total", 0) or 0), 1)
    free = int(getattr(gpu, "memory_free", 0) or 0)
    util = getattr(gpu, "utilization", None)
    used = 1 - free / total
    colour = "green" if used < 0.5 else "yellow" if used < 0.85 else "red"
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"GPU {gpu.index} ", style="bold")
    text.append(f"{plain(gpu.name)[:22]:<22} ")  # the driver's string: one line of text
    text.append("▕")
    text.append(bar(used, width), style=colour)
    text.append("▏")
    text.append(f" {free / GB:5.1f}/{total / GB:.1f} GB free")
    text.append(f"  util {util:.0f}%" if isinstance(util, (int, float)) else "  util -",
                style="dim")
    return text


class DevicePicker(Vertical):
    """Pick ``auto``, ``cuda:N`` or ``cpu``; :attr:`value` is what goes into the config."""

    DEFAULT_CSS = """
    DevicePicker { height: auto; }
    DevicePicker > OptionList { height: auto; max-height: 8; border: none; padding: 0; }
    DevicePicker > .reason { color: $warning; height: 1; text-wrap: nowrap;
                             text-overflow: ellipsis; }
    """

    class Changed(Message):
        def __init__(self, picker: DevicePicker, value: str) -> None:
            super().__init__()
            self.picker = picker
            self.value = value

        @property
        def control(self) -> DevicePicker:
            return self.picker

    def __init__(self, value: str = "auto", *, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.value = value
        self.gpus: list[Any] = []
        self.reason: str | None = None
        self.loaded = False
        self._shown: list[tuple[str, str]] = []

    def compose(self) -> ComposeResult:
        yield Static("reading devices…", classes="reason")
        yield OptionList(Option("CPU", id="cpu"), id="device-options")

    def on_mount(self) -> None:
        self.refresh_devices()
        self.set_interval(REFRESH_SECONDS, self.refresh_devices)

    def refresh_devices(self) -> None:
        self._read_devices()

    @work(thread=True, exclusive=True, group="devices")
    def _read_devices(self) -> None:
        try:
            from bvae_tui.engine.runs.devices import list_gpus

            gpus, reason = list_gpus()
        except Exception as exc:  # noqa: BLE001 - NVML trouble must not take the form down
            gpus, reason = [], f"cannot read GPUs ({exc})"
        self.post_message(DevicesUpdated("devices", list(gpus), reason))

    def on_devices_updated(self, message: DevicesUpdated) -> None:
        message.stop()
        self.gpus, self.reason, self.loaded = message.gpus, message.reason, True
        self._rebuild()

    def _rebuild(self) -> None:
        options: list[tuple[str, Any]] = []
        if self.gpus:
            best = max(self.gpus, key=lambda g: g.memory_free)
            options.append(("auto", Text.assemble(("auto", "bold"),
                                                  f"  the GPU with most free memory now "
                                                  f"(GPU {best.index})")))
            options += [(f"cuda:{g.index}", gpu_label(g)) for g in self.gpus]
        options.append(("cpu", Text.assemble(("CPU", "bold"), "  slow, always there")))
        reason = self.query_one(".reason", Static)
        if self.gpus:
            reason.update("")
            reason.display = False
        else:
            reason.display = True
            reason.update(as_text(self.reason or "NVML reports no GPU"))  # an NVML error's text
        ids = [i for i, _ in options]
        if self.value not in ids:
            self.value = "auto" if "auto" in ids else "cpu"
            self.post_message(self.Changed(self, self.value))
        key = [(i, str(t)) for i, t in options]
        if key == self._shown:
            return
        self._shown = key
        olist = self.query_one(OptionList)
        olist.clear_options()
        olist.add_options([Option(t, id=i) for i, t in options])
        olist.highlighted = ids.index(self.value)

    @on(OptionList.OptionHighlighted)
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        value = event.option.id or "cpu"
        if value != self.value:
            self.value = value
            self.post_message(self.Changed(self, value))

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()

    def options(self) -> list[str]:
        """The device ids on offer (for tests and the command line preview)."""
        return [i for i, _ in self._shown]

    def select(self, value: str) -> None:
        ids = self.options()
        if value in ids:
            self.query_one(OptionList).highlighted = ids.index(value)
            self.value = value


class DeviceField(Vertical):
    """The config's device field: the chosen device on one line, the picker under it."""

    DEFAULT_CSS = """
    DeviceField { height: auto; width: 1fr; }
    DeviceField > .device-value { height: 1; }
    """

    def __init__(self, info: FieldInfo, *, id: str) -> None:
        super().__init__(id=id)
        self.default = str(info.default)

    def compose(self) -> ComposeResult:
        yield Static(self.default, classes="device-value")
        yield DevicePicker(self.default, id="device-picker")

    @on(DevicePicker.Changed)
    def _picked(self, event: DevicePicker.Changed) -> None:  # the form hears the change too
        self.query_one(".device-value", Static).update(event.value)

    @property
    def field_value(self) -> str:
        return self.query_one(DevicePicker).value

    def set_field_value(self, value: Any) -> None:
        picker = self.query_one(DevicePicker)
        picker.select(str(value))  # a device not on offer keeps the current one
        self.query_one(".device-value", Static).update(picker.value)

    def focus(self, scroll_visible: bool = True) -> DeviceField:
        self.query_one(OptionList).focus(scroll_visible)
        return self
