"""The monitor of a sweep's member, opened from the sweep screen: `esc` goes back to the sweep,
and the footer and help say so (the runs screen's monitor says `esc Runs`)."""

from __future__ import annotations

from textual.binding import Binding

from bvae_tui.tui.screens.monitor import HELP, MonitorScreen


class MemberMonitorScreen(MonitorScreen):
    HELP = HELP.replace("| `esc` | back to the runs |", "| `esc` | back to the sweep |")
    BINDINGS = [Binding("escape", "back", "Sweep")]
