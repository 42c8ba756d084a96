"""Geometry of procedural dSprites on single rendered sprites (REFERENCE.md, section dSprites)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bvae_tui.datasets import dsprites as d

SQUARE, ELLIPSE, HEART = 0, 1, 2


def _bbox(img: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(img.any(axis=1))
    cols = np.flatnonzero(img.any(axis=0))
    return rows[0], rows[-1], cols[0], cols[-1]


def _centroid(img: np.ndarray) -> tuple[float, float]:
    r, c = np.nonzero(img)
    return float(c.mean() + 0.5), float(r.mean() + 0.5)  # pixel centres, (x, y)


def test_square_is_pixel_centre_sampled():
    # centre 32: pixel i is on when 32 - 9.6 <= i + 0.5 <= 32 + 9.6 -> i in 22..41
    img = d.render(SQUARE, 1.0, 0.0, 0.5, 0.5)
    assert _bbox(img) == (22, 41, 22, 41)
    assert img.sum() == 400 and img.dtype == np.uint8 and set(np.unique(img)) == {0, 1}
    # scale 0.5: side 9.6 -> 32 - 4.8 <= i + 0.5 <= 32 + 4.8 -> i in 27..36
    assert _bbox(d.render(SQUARE, 0.5, 0.0, 0.5, 0.5)) == (27, 36, 27, 36)


def test_sub_pixel_centre_and_axes():
    # posX -> column, posY -> row, centre 64 * (0.25 + 0.5 * pos), not rounded
    for px, py in [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (3 / 31, 17 / 31)]:
        img = d.render(SQUARE, 1.0, 0.0, px, py)
        cx, cy = _centroid(img)
        assert abs(cx - 64 * (0.25 + 0.5 * px)) < 0.5
        assert abs(cy - 64 * (0.25 + 0.5 * py)) < 0.5
    # neighbouring grid positions differ by ~1.03 px and shift the square by whole columns
    a = d.render(SQUARE, 1.0, 0.0, 0.0, 0.5)
    b = d.render(SQUARE, 1.0, 0.0, 1 / 31, 0.5)
    assert _bbox(b)[2] - _bbox(a)[2] in (1, 2)


def test_ellipse_axes_and_area():
    img = d.render(ELLIPSE, 1.0, 0.0, 0.5, 0.5)
    r0, r1, c0, c1 = _bbox(img)
    assert c1 - c0 + 1 in (25, 26)  # 2 * 12.76
    assert r1 - r0 + 1 in (14, 15)  # 2 * 7.22
    assert abs(img.sum() - math.pi * 12.76 * 7.22) < 12


def test_rotation_is_counter_clockwise_as_displayed():
    # At +45 degrees the long axis of the ellipse runs from lower-left to upper-right on screen.
    img = d.render(ELLIPSE, 1.0, math.pi / 4, 0.5, 0.5).astype(int)
    upper_right = img[:32, 32:].sum()
    upper_left = img[:32, :32].sum()
    assert upper_right > 1.5 * upper_left
    # A heart turned a quarter turn CCW on screen: its tip (down at angle 0) points right, so
    # its lobes, where the mass is, sit on the left.
    heart = d.render(HEART, 1.0, math.pi / 2, 0.5, 0.5)
    cx, cy = _centroid(heart)
    assert cx < 31 and abs(cy - 32) < 0.3
    assert _bbox(heart)[3] in (39, 40)  # tip at x = 32 + 8.73
    assert _bbox(heart)[2] in (22, 23)  # lobes reach x = 32 - 9.1


def test_heart_upright_with_two_lobes():
    img = d.render(HEART, 1.0, 0.0, 0.5, 0.5)
    r0, r1, c0, c1 = _bbox(img)
    assert c1 - c0 + 1 in (19, 20, 21)  # about 19.7 px wide
    assert r1 - r0 + 1 in (17, 18, 19)  # about 17.8 px tall
    top = img[r0]
    runs = np.flatnonzero(np.diff(np.concatenate([[0], top, [0]])) == 1)
    assert len(runs) == 2  # the notch between the lobes
    assert img[r1].sum() <= 2  # the tip
    assert _centroid(img)[1] < 32  # the mass (lobes) is above the centre
    np.testing.assert_array_equal(img, img[:, ::-1])  # symmetric about the vertical axis


def test_heart_points():
    inside = lambda x, y: bool(d.inside(HEART, 1.0, 0.0, np.float64(x), np.float64(y)))  # noqa: E731
    assert inside(0, 0)
    assert inside(0, 8.5) and not inside(0, 8.9)  # tip at +8.73 (y down)
    assert not inside(0, -6.0)  # the notch
    assert inside(4.73, -9.0) and not inside(4.73, -9.2)  # lobe top at -4 - 5.1
    assert inside(9.7, -4.0) and not inside(9.9, -4.0)  # lobe side
    # the body below the lobes follows the tangents from the tip
    assert inside(6.0, 2.0) and not inside(7.5, 2.0)


def test_symmetries_and_full_turn():
    theta = d.full_values()[3]
    for shape in (SQUARE, ELLIPSE, HEART):
        a = d.render(shape, 0.8, theta[0], 0.3, 0.6)
        b = d.render(shape, 0.8, theta[39], 0.3, 0.6)
        np.testing.assert_array_equal(a, b)  # 0 and 2*pi render identically
    np.testing.assert_array_equal(d.render(SQUARE, 1.0, math.pi / 2, 0.5, 0.5),
                                  d.render(SQUARE, 1.0, 0.0, 0.5, 0.5))
    np.testing.assert_array_equal(d.render(ELLIPSE, 1.0, math.pi, 0.5, 0.5),
                                  d.render(ELLIPSE, 1.0, 0.0, 0.5, 0.5))


def test_full_grid_layout():
    g = d.full_grid()
    assert g.sizes == (1, 3, 6, 40, 32, 32) and g.n == 737280
    vals = g.latent_values()
    cls = g.classes()
    strides = np.array([737280, 245760, 40960, 1024, 32, 1])
    rows = np.array([0, 1, 31, 32, 1024, 40960, 245760, 737279])
    np.testing.assert_array_equal(cls[rows] @ strides, rows)
    np.testing.assert_allclose(vals[1], [1, 1, 0.5, 0, 0, 1 / 31])
    np.testing.assert_allclose(vals[-1], [1, 3, 1, 2 * np.pi, 1, 1])


@pytest.mark.parametrize("block", [0, 333, 719])
def test_fast_blocks_match_reference(block):
    g = d.full_grid()
    packed = d._render_block(g, block)
    imgs = d.unpack(packed)
    per = 1024
    vals = g.latent_values()[block * per : (block + 1) * per]
    for i in range(0, per, 97):
        _, shape, scale, theta, px, py = vals[i]
        np.testing.assert_array_equal(imgs[i], d.render(int(shape) - 1, scale, theta, px, py))


def test_pixel_statistics_close_to_real():
    # Every shape, scale and angle at a 4 x 4 subset of positions (sprites never leave the
    # frame, so position barely changes the pixel count): mean within 0.2% of the real 0.042494.
    v = d.full_values()
    sel = np.round(np.linspace(0, 31, 4)).astype(int)
    g = d.Grid(tuple(v[:4]) + (v[4][sel], v[5][sel]),
               tuple(np.arange(len(x)) for x in v[:4]) + (sel, sel))
    imgs = d.unpack(d.generate_packed(g))
    per_image = imgs.reshape(len(imgs), -1).mean(axis=1)
    assert abs(per_image.mean() / 0.042494 - 1) < 0.002
    assert abs(np.sqrt(per_image * (1 - per_image)).mean() / 0.195166 - 1) < 0.002


def test_generation_is_deterministic():
    g = d.mini_grid()
    a = d.generate_packed(g, workers=2)
    b = d.generate_packed(g, workers=1)
    assert a.tobytes() == b.tobytes()
