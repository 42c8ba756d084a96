"""Preview images: full resolution through the Kitty or Sixel graphics protocol where the
terminal speaks one, half-block characters everywhere else.

The protocols are drawn by textual-image (a maintained library for them). Whether the terminal
speaks one is asked once, before the app starts (the library queries the terminal, which it
cannot do once Textual reads the input): :func:`probe`. Over plain SSH, inside tmux, in a
terminal without either protocol, in tests, or with ``BVAE_GRAPHICS=halfblock``, every preview
is a :class:`~bvae_tui.tui.widgets.halfblock_image.HalfBlockImage`.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from typing import Any

import numpy as np
from textual.widget import Widget

from bvae_tui.tui.widgets.halfblock_image import HalfBlockImage

_protocol: str | None = None  # "kitty" or "sixel" once probe() found one


def probe() -> str | None:
    """Find out whether the terminal speaks Kitty graphics or Sixel (call before the app runs).

    Returns the protocol, or None (half blocks). Never raises: a library that is missing or
    fails leaves the half blocks in place."""
    global _protocol
    _protocol = None
    if os.environ.get("BVAE_GRAPHICS", "auto").lower() in ("halfblock", "off", "0", "no"):
        return None
    stdout = sys.__stdout__
    if stdout is None or not stdout.isatty():
        return None
    try:
        import textual_image.renderable as renderable
        import textual_image.widget  # noqa: F401  (asks the terminal its cell size, now)
        from textual_image.renderable import sixel, tgp
    except Exception:  # noqa: BLE001 - not installed, or the terminal query failed
        return None
    if renderable.Image is sixel.Image:
        _protocol = "sixel"
    elif renderable.Image is tgp.Image:
        _protocol = "kitty"
    return _protocol


def protocol() -> str | None:
    """The graphics protocol in use, or None for half blocks."""
    return _protocol


def use_protocol(name: str | None) -> None:
    """Force a protocol (tests; a terminal known to speak it)."""
    global _protocol
    _protocol = name


@cache
def _graphics_class(name: str) -> type[Widget]:
    """A textual-image widget class for protocol ``name`` with the preview API."""
    from PIL import Image as PILImage
    from textual_image.widget import SixelImage, TGPImage, get_cell_size

    base: Any = SixelImage if name == "sixel" else TGPImage

    class GraphicsImage(base, Renderable=base._Renderable):  # type: ignore[misc, valid-type]
        """An RGB array through the terminal's graphics protocol, fitted to the width."""

        DEFAULT_CSS = """
        GraphicsImage { width: 100%; height: auto; }
        """

        def __init__(self, placeholder: str, id: str | None, classes: str | None) -> None:
            super().__init__(None, id=id, classes=classes)
            self.placeholder = placeholder
            self.zoom: float | None = None
            self.protocol = name
            self.array: np.ndarray | None = None

        def set_image(self, image: np.ndarray | None, placeholder: str | None = None) -> None:
            if placeholder is not None:
                self.placeholder = placeholder
            if image is self.array:
                return
            self.array = image
            self.image = None if image is None else PILImage.fromarray(image)

        def set_zoom(self, zoom: float | None) -> None:
            self.zoom = zoom
            if zoom is None or self.array is None:
                self.styles.width = "100%"
            else:  # `zoom` image pixels a screen pixel, in cells of the terminal's size
                self.styles.width = max(4, int(self.array.shape[1] * zoom
                                               / get_cell_size().width))

    return GraphicsImage


def preview_image(placeholder: str = "no image yet", *, id: str | None = None,
                  classes: str | None = None) -> Widget:
    """A preview widget with ``set_image(array, placeholder)``, ``set_zoom(zoom)`` and
    ``zoom``: a graphics-protocol image where the terminal speaks one, else half blocks."""
    if _protocol is not None:
        try:
            return _graphics_class(_protocol)(placeholder, id, classes)
        except Exception:  # noqa: BLE001 - the library failed: half blocks still work
            pass
    return HalfBlockImage(placeholder, id=id, classes=classes)
