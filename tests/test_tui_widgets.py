"""The drawing widgets on their own: half-block image, braille plot, KL bars, model helpers."""

from __future__ import annotations

import numpy as np
from textual.app import App, ComposeResult

from bvae_tui.engine.runs.records import MetricsRow
from bvae_tui.tui.messages import MetricsChanged, ScoresChanged
from bvae_tui.tui.run_data import MetricsHistory, fmt_duration, fmt_num
from bvae_tui.tui.widgets.curve_plot import CurvePlot, Series
from bvae_tui.tui.widgets.halfblock_image import UPPER_HALF, HalfBlockImage, area_resize, to_strips
from bvae_tui.tui.widgets.kl_bars import KLBars, bar, nice_ceiling
from bvae_tui.tui.widgets.log_tail import LogTail, clean_line


def test_area_resize_averages_boxes():
    img = np.zeros((4, 4, 3), np.uint8)
    img[:2, :2] = 255  # top-left quarter white
    small = area_resize(img, 2, 2)
    assert small.shape == (2, 2, 3)
    assert small[0, 0].tolist() == [255] * 3 and small[1, 1].tolist() == [0] * 3
    half = area_resize(img, 1, 2)
    assert half[0, 0].tolist() == [128] * 3  # (255 + 0) / 2 rounded


def test_half_blocks_put_top_pixel_in_fg_and_bottom_in_bg():
    img = np.array([[[255, 0, 0]], [[0, 0, 255]]], np.uint8)  # red above blue
    [strip] = to_strips(img)
    [seg] = list(strip)
    assert seg.text == UPPER_HALF
    assert seg.style.color.triplet == (255, 0, 0) and seg.style.bgcolor.triplet == (0, 0, 255)


def test_bars_and_scale():
    assert bar(0.5, 4) == "██  " and bar(1.0, 3) == "███" and bar(0, 2) == "  "
    assert bar(1 / 16, 2) == "▏ "
    assert [nice_ceiling(v) for v in (0.1, 0.7, 1.2, 3, 7, 12)] == [0.5, 1, 2, 5, 10, 20]


def test_history_decimates_and_rates():
    h = MetricsHistory(max_points=10)
    h.extend([MetricsRow(iter=i, elapsed=i / 10, loss=1.0, recon=1.0, kl=0.0)
              for i in range(1, 12)])
    h.extend([MetricsRow(loss=5.0)])  # a row without its step is not plotted
    assert h.rows_seen == 11
    assert len(h.iters) <= 10 and h.iters[-1] == 11 and h.rows_seen == 11
    assert abs(h.iter_rate() - 10.0) < 1e-9
    assert fmt_num(1234.5) == "1234" and fmt_num(None) == "-" and fmt_duration(3725) == "1:02:05"


class _Show(App):
    def compose(self) -> ComposeResult:
        yield CurvePlot("loss", id="p")
        yield KLBars(id="k")
        yield HalfBlockImage(id="i")


async def test_widgets_render():
    app = _Show()
    async with app.run_test(size=(60, 30)) as pilot:
        plot = app.query_one(CurvePlot)
        xs = np.arange(1, 2001, dtype=float)
        plot.set_data(xs, [Series("loss", (3000 * np.exp(-xs / 300) + 40).tolist(), "cyan")])
        bars = app.query_one(KLBars)
        bars.set_latents([2.5, 0.01, 0.8], [0.1, 0.0, -0.3], [0.2, 1.0, 0.5])
        image = app.query_one(HalfBlockImage)
        image.set_image(np.full((64, 128, 3), 200, np.uint8))
        await pilot.pause()
        text = str(plot.render())
        assert any(0x2800 < ord(ch) <= 0x28FF for ch in text)  # braille dots drawn
        assert "3030┤" in text and "43.8┤" in text  # first and last loss as the axis ends
        assert bars.active == [0, 2] and bars.scale == 5.0
        lines = str(bars.render()).splitlines()
        assert lines[1].startswith("z0 ●") and lines[2].startswith("z1 ·")
        assert image.size.height == 15  # 128x64 px fitted to 60 columns: 60x30 px, 15 rows
        assert image.render_line(0).text.startswith(UPPER_HALF * 60)


class _Counter(App):
    def __init__(self) -> None:
        super().__init__()
        self.handled: list[int] = []

    def on_metrics_changed(self, message: MetricsChanged) -> None:
        self.handled.append(message.history.rows_seen)


async def test_fast_metric_stream_is_coalesced():
    app = _Counter()
    async with app.run_test() as pilot:
        history = MetricsHistory()
        for i in range(1, 101):  # a burst faster than the UI handles messages
            history.extend([MetricsRow(iter=i, loss=1.0)])
            app.post_message(MetricsChanged("run", history.snapshot()))
        app.post_message(ScoresChanged("run", {}))  # another kind is never merged away
        await pilot.pause()
        assert app.handled[-1] == 100  # the newest state always arrives
        assert len(app.handled) < 100  # ... without one repaint per row


class _LogApp(App):
    def compose(self) -> ComposeResult:
        yield LogTail()


async def test_log_tail_strips_escapes_and_control_characters():
    assert clean_line("a\x1b[2Jb") == "ab"  # clear-screen never reaches the terminal
    assert clean_line("\x1b[31mred\x1b[0m \x1b]0;title\x07ok\x07") == "red ok"
    assert clean_line("step 1\rstep 2\rstep 3") == "step 3"  # a redrawn progress line
    assert clean_line("windows\r") == "windows" and clean_line("a\tb") == "a       b"
    app = _LogApp()
    async with app.run_test(size=(60, 10)) as pilot:
        log = app.query_one(LogTail)
        log.set_lines(["start", "\x1b[2J\x1b[Hboom", "10%\r50%\r100%"])
        log.set_lines(["start", "\x1b[2J\x1b[Hboom", "10%\r50%\r100%", "bel\x07l"])
        await pilot.pause()
        assert list(log.lines) == ["start", "boom", "100%", "bell"]
        assert all(not any(ord(ch) < 32 for ch in line) for line in log.lines)
