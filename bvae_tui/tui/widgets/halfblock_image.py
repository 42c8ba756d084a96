"""An RGB image drawn with the upper half block: two pixels a cell (fg on top, bg below).

Works in any truecolor terminal, over SSH, without a graphics protocol. The image is shrunk with
an area average (not nearest neighbour) so thin sprite edges survive a large reduction.
"""

from __future__ import annotations

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.strip import Strip
from textual.widget import Widget

UPPER_HALF = "▀"


def area_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (H, W, 3) uint8 to (height, width, 3) by averaging each target pixel's source box."""
    src_h, src_w = image.shape[:2]
    height, width = max(1, min(height, src_h)), max(1, min(width, src_w))
    rows = np.linspace(0, src_h, height + 1).astype(np.int64)[:-1]
    cols = np.linspace(0, src_w, width + 1).astype(np.int64)[:-1]
    acc = image.astype(np.float32)
    summed = np.add.reduceat(np.add.reduceat(acc, rows, axis=0), cols, axis=1)
    counts = np.diff(np.r_[rows, src_h])[:, None] * np.diff(np.r_[cols, src_w])[None, :]
    return np.clip(summed / counts[..., None] + 0.5, 0, 255).astype(np.uint8)


def fit(src_h: int, src_w: int, cells_w: int, cells_h: int) -> tuple[int, int]:
    """Pixel size (h, w) that fits ``cells_w`` x ``cells_h`` cells (2 px a row), keeping aspect."""
    if src_h <= 0 or src_w <= 0 or cells_w <= 0 or cells_h <= 0:
        return 0, 0
    scale = min(cells_w / src_w, (cells_h * 2) / src_h, 1.0)
    return max(2, int(src_h * scale)) // 2 * 2, max(1, int(src_w * scale))


def scaled(src_h: int, src_w: int, zoom: float) -> tuple[int, int]:
    """Pixel size (h, w) at a fixed zoom of the source (1.0: one image pixel a cell)."""
    return max(2, int(src_h * zoom)) // 2 * 2, max(1, int(src_w * zoom))


def to_strips(pixels: np.ndarray) -> list[Strip]:
    """Half-block strips for an (H, W, 3) image with an even H."""
    if pixels.shape[0] % 2:
        pixels = np.concatenate([pixels, np.zeros_like(pixels[:1])], axis=0)
    strips = []
    styles: dict[tuple[int, ...], Style] = {}
    for top, bottom in zip(pixels[0::2], pixels[1::2], strict=True):
        segments = []
        for (r1, g1, b1), (r2, g2, b2) in zip(top.tolist(), bottom.tolist(), strict=True):
            key = (r1, g1, b1, r2, g2, b2)
            style = styles.get(key)
            if style is None:
                style = styles[key] = Style(color=f"#{r1:02x}{g1:02x}{b1:02x}",
                                            bgcolor=f"#{r2:02x}{g2:02x}{b2:02x}")
            segments.append(Segment(UPPER_HALF, style))
        strips.append(Strip(Segment.simplify(segments)))
    return strips


class HalfBlockImage(Widget):
    """Shows an RGB array scaled to fit the widget; a message when there is no image."""

    DEFAULT_CSS = """
    HalfBlockImage { height: auto; min-height: 1; }
    """

    def __init__(self, placeholder: str = "no image yet", *, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.placeholder = placeholder
        self._image: np.ndarray | None = None
        self._strips: list[Strip] = []
        self._built_for: tuple[int, int, float | None] | None = None
        self.max_rows = 40  # when fitting: at most this many rows, so it fits on a screen
        self.zoom: float | None = None  # None: fit the width; else a fixed scale (scrolls)

    @property
    def image(self) -> np.ndarray | None:
        return self._image

    def set_image(self, image: np.ndarray | None, placeholder: str | None = None) -> None:
        self._image = image
        if placeholder is not None:
            self.placeholder = placeholder
        self._built_for = None
        self.refresh(layout=True)

    def set_zoom(self, zoom: float | None) -> None:
        self.zoom = zoom
        self._built_for = None
        self.refresh(layout=True)

    def _pixel_size(self, width: int) -> tuple[int, int]:
        assert self._image is not None
        src_h, src_w = self._image.shape[:2]
        if self.zoom is None:
            return fit(src_h, src_w, width, self.max_rows)
        return scaled(src_h, src_w, self.zoom)

    def get_content_width(self, container: Size, viewport: Size) -> int:
        if self._image is None or self.zoom is None:
            return container.width
        return self._pixel_size(container.width)[1]

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        if self._image is None:
            return 1
        return max(1, self._pixel_size(width)[0] // 2)

    def _build(self) -> None:
        key = (self.size.width, self.size.height, self.zoom)
        if self._built_for == key:
            return
        self._built_for = key
        if self._image is None:
            self._strips = []
            return
        h, w = self._pixel_size(self.size.width)
        self._strips = to_strips(area_resize(self._image, h, w)) if h and w else []

    def render_line(self, y: int) -> Strip:
        self._build()
        if self._image is None:
            if y == 0:
                return Strip([Segment(self.placeholder[: self.size.width], Style(dim=True))])
            return Strip.blank(self.size.width)
        if y < len(self._strips):
            return self._strips[y]
        return Strip.blank(self.size.width)
