"""Decoding one photo into a 64x64 RGB tile: colour modes, transparency, bit depths, damaged files,
the centre crop and the antialiased resize."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bvae_tui.datasets.decode import centre_square, decode


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _flat(tile: np.ndarray) -> tuple[float, float, float]:
    assert tile.shape == (3, 64, 64) and tile.dtype == np.uint8
    return tuple(float(tile[c].mean()) for c in range(3))


def test_greyscale_jpeg_and_png_become_grey_rgb():
    for data in (_encode(Image.new("L", (178, 218), 128), "JPEG"),
                 _encode(Image.new("L", (50, 40), 128), "PNG")):
        r, g, b = _flat(decode(data))
        assert r == g == b and abs(r - 128) <= 2


def test_cmyk_jpeg_keeps_its_colour():
    data = _encode(Image.new("RGB", (178, 218), (220, 30, 30)).convert("CMYK"), "JPEG")
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    r, g, b = _flat(decode(data))
    assert r > 200 and g < 50 and b < 50


def test_transparency_is_composited_on_white():
    half = _encode(Image.new("RGBA", (64, 64), (0, 0, 0, 128)), "PNG")
    assert _flat(decode(half)) == pytest.approx((127, 127, 127), abs=1)
    clear = _encode(Image.new("LA", (64, 64), (0, 0)), "PNG")
    assert _flat(decode(clear)) == (255, 255, 255)
    # A palette image whose colour 0 is marked transparent: those pixels turn white.
    pal = Image.new("P", (64, 64), 0)
    pal.putpalette([10, 20, 30, 200, 0, 0] + [0] * 762)
    pal.paste(1, (0, 0, 64, 32))  # top half: colour 1 (red), opaque
    tile = decode(_encode(pal, "PNG", transparency=0))
    assert tuple(tile[:, 5, 5]) == (200, 0, 0) and tuple(tile[:, 60, 5]) == (255, 255, 255)
    # Without the transparency mark the palette colours stay.
    assert tuple(decode(_encode(pal, "PNG"))[:, 60, 5]) == (10, 20, 30)


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    wide = np.full((40, 40), 128 * 257, dtype=np.uint16)
    data = _encode(Image.fromarray(wide), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    assert _flat(decode(data)) == (128, 128, 128)  # Pillow's plain convert() gives 255


@pytest.mark.parametrize("data", [b"", b"\xff\xd8 not a jpeg", b"\x89PNG\r\n\x1a\n",
                                  "truncated jpeg", "truncated png"])
def test_damaged_files_are_none(data):
    if data == "truncated jpeg":
        img = Image.fromarray(np.random.RandomState(0).randint(0, 255, (218, 178, 3), np.uint8))
        data = _encode(img, "JPEG")[:2000]
    elif data == "truncated png":
        img = Image.fromarray(np.random.RandomState(0).randint(0, 255, (60, 60, 3), np.uint8))
        data = _encode(img, "PNG")[:3000]
    assert decode(data) is None


def test_paths_decode_like_bytes(tmp_path):
    img = Image.new("RGB", (90, 60), (1, 2, 3))
    img.save(tmp_path / "a.png")
    assert np.array_equal(decode(tmp_path / "a.png"), decode(_encode(img, "PNG")))
    assert decode(tmp_path / "missing.png") is None


def test_centre_square_floors_the_odd_pixel():
    assert centre_square(178, 218) == (0, 20, 178, 198)
    assert centre_square(121, 60) == (30, 0, 90, 60)
    assert centre_square(64, 64) == (0, 0, 64, 64)


def test_resize_is_antialiased():
    """A one-pixel checkerboard shrunk 178 -> 64 averages to grey; sampling without a low-pass
    filter would keep black and white pixels."""
    board = (np.indices((218, 178)).sum(axis=0) % 2 * 255).astype(np.uint8)
    tile = decode(_encode(Image.fromarray(board).convert("RGB"), "PNG"))
    inner = tile[:, 4:-4, 4:-4].astype(np.float64)  # away from the edges' ringing
    assert abs(inner.mean() - 127.5) < 3 and inner.std() < 8
