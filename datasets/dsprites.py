"""Procedural dSprites, faithful to DeepMind's file (geometry measured in ../shared/REFERENCE.md).

Binary 64x64 images; a pixel is on when its centre ``(i + 0.5, j + 0.5)`` lies inside the shape.
Sprite centre ``64 * (0.25 + 0.5 * pos)`` pixels (sub-pixel), posX -> column, posY -> row (y down),
rotation about the centre, counter-clockwise *as displayed* for a growing angle.

The generator renders one (shape, scale, orientation) block of posX x posY images at a time, only
inside a small window around each sprite, with every test written as a sum of a per-column array
and a per-row array so that the 4-D broadcast does the least work. Blocks are bit-packed as they
are made, so the full 737,280-image grid never exists unpacked (377 MB packed instead of 3 GB).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

IMAGE_SIZE = 64
PACKED_BYTES = IMAGE_SIZE * IMAGE_SIZE // 8  # 512 bytes an image

FACTOR_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
FULL_SIZES = (1, 3, 6, 40, 32, 32)
SHAPE_NAMES = ("square", "ellipse", "heart")

# Geometry at scale 1, in pixels (REFERENCE.md, measured against real frames).
SQUARE_HALF = 19.2 / 2
ELLIPSE_AXES = (12.76, 7.22)  # semi-axes: horizontal, vertical at angle 0
HEART_LOBE_X, HEART_LOBE_Y, HEART_LOBE_R, HEART_TIP_Y = 4.73, -4.00, 5.10, 8.73
# Largest distance of any shape point from the centre at scale 1 (square corner: 9.6 * sqrt 2);
# it bounds the window each sprite is rendered in.
MAX_RADIUS = SQUARE_HALF * math.sqrt(2) + 1e-6

MINI_SIZES = (1, 3, 3, 8, 8, 8)


def full_values() -> list[np.ndarray]:
    """The value grid of each factor of the real file, in factor order."""
    return [
        np.array([1.0]),
        np.array([1.0, 2.0, 3.0]),
        np.linspace(0.5, 1.0, 6),
        np.linspace(0.0, 2 * np.pi, 40),
        np.linspace(0.0, 1.0, 32),
        np.linspace(0.0, 1.0, 32),
    ]


def mini_indices() -> list[np.ndarray]:
    """Which class indices of the full grid ``dsprites-mini`` keeps (sizes 1, 3, 3, 8, 8, 8).

    Scales small/medium/large, every fifth angle (0..35, so no duplicate of angle 0), and eight
    positions that include both edges of the frame.
    """
    return [
        np.array([0]),
        np.array([0, 1, 2]),
        np.array([0, 2, 5]),
        np.arange(0, 40, 5),
        np.round(np.linspace(0, 31, 8)).astype(np.int64),
        np.round(np.linspace(0, 31, 8)).astype(np.int64),
    ]


@dataclass(frozen=True)
class Grid:
    """A full factorial grid of sprite factors; the last factor varies fastest."""

    values: tuple[np.ndarray, ...]  # per factor, the factor's values
    full_classes: tuple[np.ndarray, ...]  # per factor, class indices into the full dSprites grid

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.values)

    @property
    def n(self) -> int:
        return int(np.prod(self.sizes))

    def classes(self) -> np.ndarray:
        """(N, 6) int64 class indices within this grid, in storage order."""
        return _cartesian([np.arange(s, dtype=np.int64) for s in self.sizes])

    def latent_values(self) -> np.ndarray:
        """(N, 6) float64 factor values, in storage order."""
        return _cartesian([np.asarray(v, dtype=np.float64) for v in self.values])


def full_grid() -> Grid:
    vals = full_values()
    return Grid(tuple(vals), tuple(np.arange(len(v)) for v in vals))


def mini_grid() -> Grid:
    vals = full_values()
    idx = mini_indices()
    return Grid(tuple(v[i] for v, i in zip(vals, idx, strict=True)), tuple(idx))


def _cartesian(arrays: Sequence[np.ndarray]) -> np.ndarray:
    mesh = np.meshgrid(*arrays, indexing="ij")
    return np.stack([m.reshape(-1) for m in mesh], axis=1)


# --- geometry ------------------------------------------------------------------------------------

def _heart_pentagon() -> list[tuple[float, float, float]]:
    """Half-planes ``nx*x + ny*y <= c`` (heart frame, y down, scale 1) of the heart's body.

    The body is the convex pentagon tip -> right tangent point -> right lobe centre -> left lobe
    centre -> left tangent point: the region below the lobe centres bounded by the outer tangents
    from the tip. Together with the two lobe discs it is the whole heart (the radius edges from
    the lobe centres to the tangent points lie inside the discs).
    """
    cx, cy, r, tip = HEART_LOBE_X, HEART_LOBE_Y, HEART_LOBE_R, HEART_TIP_Y
    d = math.hypot(0 - cx, tip - cy)
    phi = math.atan2(tip - cy, 0 - cx)
    alpha = math.acos(r / d)
    tr = (cx + r * math.cos(phi - alpha), cy + r * math.sin(phi - alpha))  # outer side: x > cx
    verts = [(0.0, tip), tr, (cx, cy), (-cx, cy), (-tr[0], tr[1])]
    mx = sum(v[0] for v in verts) / len(verts)
    my = sum(v[1] for v in verts) / len(verts)
    planes = []
    for (ax, ay), (bx, by) in zip(verts, verts[1:] + verts[:1], strict=True):
        nx, ny = by - ay, -(bx - ax)  # a normal of the edge
        c = nx * ax + ny * ay
        if nx * mx + ny * my > c:  # orient so the inside (the centroid) satisfies <=
            nx, ny, c = -nx, -ny, -c
        planes.append((nx, ny, c))
    return planes


HEART_PLANES = _heart_pentagon()


def inside(shape: int, scale: float, theta: float, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether the points ``(u, v)`` (image axes, y down, relative to the sprite centre) lie in the
    sprite ``shape`` (0 square, 1 ellipse, 2 heart) of ``scale`` rotated by ``theta``.

    ``u`` and ``v`` broadcast against each other; each test is arranged as (array in u) op
    (array in v) so the expensive full-size work is a few additions and comparisons.
    """
    c, s = math.cos(theta), math.sin(theta)
    # Shape-frame coordinates of an image point (inverse of the display-CCW rotation):
    #   x = u*c - v*s,  y = u*s + v*c
    if shape == 0:
        h = SQUARE_HALF * scale
        x = (u * c) - (v * s)
        y = (u * s) + (v * c)
        return (np.abs(x) <= h) & (np.abs(y) <= h)
    if shape == 1:
        ia = 1.0 / (ELLIPSE_AXES[0] * scale) ** 2
        ib = 1.0 / (ELLIPSE_AXES[1] * scale) ** 2
        # x^2/a^2 + y^2/b^2 as a quadratic form in (u, v).
        pu = (c * c * ia + s * s * ib) * (u * u)
        pv = (s * s * ia + c * c * ib) * (v * v)
        quv = 2.0 * c * s * (ib - ia)
        return (pu + pv) + (quv * u) * v <= 1.0
    if shape == 2:
        out = None
        r2 = (HEART_LOBE_R * scale) ** 2
        for sign in (1.0, -1.0):  # lobe discs; their centres rotated into image axes
            px, py = sign * HEART_LOBE_X * scale, HEART_LOBE_Y * scale
            iu, iv = px * c + py * s, -px * s + py * c
            disc = ((u - iu) ** 2) + ((v - iv) ** 2) <= r2
            out = disc if out is None else out | disc
        body = None
        for nx, ny, off in HEART_PLANES:  # body: n . (x, y) <= off * scale, in image axes
            a, b = nx * c + ny * s, -nx * s + ny * c
            half = (a * u) + (b * v) <= off * scale
            body = half if body is None else body & half
        return out | body
    raise ValueError(f"unknown shape {shape}")


def centre(pos: np.ndarray | float) -> np.ndarray:
    """Sprite centre in pixels for a position in [0, 1]: 64 * (0.25 + 0.5 * pos)."""
    return IMAGE_SIZE * (0.25 + 0.5 * np.asarray(pos, dtype=np.float64))


def render(shape: int, scale: float, theta: float, pos_x: float, pos_y: float) -> np.ndarray:
    """One sprite as a (64, 64) uint8 image of 0/1, evaluated at every pixel (the plain reference
    the fast generator is checked against)."""
    grid = np.arange(IMAGE_SIZE, dtype=np.float64) + 0.5
    u = (grid - centre(pos_x))[None, :]
    v = (grid - centre(pos_y))[:, None]
    return inside(shape, scale, theta, u, v).astype(np.uint8)


# --- fast generation -----------------------------------------------------------------------------

def _block_count(grid: Grid) -> int:
    return int(np.prod(grid.sizes[:4]))


def _render_block(grid: Grid, block: int) -> np.ndarray:
    """Images of one (color, shape, scale, orientation) block, all posX x posY positions, as a
    bit-packed (nX * nY, 512) uint8 array in storage order (posY fastest)."""
    _, n_shape, n_scale, n_orient = grid.sizes[:4]
    o = block % n_orient
    k = (block // n_orient) % n_scale
    sh = (block // (n_orient * n_scale)) % n_shape
    shape = int(round(grid.values[1][sh])) - 1  # values 1, 2, 3 -> square, ellipse, heart
    scale = float(grid.values[2][k])
    theta = float(grid.values[3][o])
    cx = centre(grid.values[4])
    cy = centre(grid.values[5])
    nx, ny = len(cx), len(cy)
    # Window around each sprite that contains every pixel centre within MAX_RADIUS * scale.
    half = math.ceil(MAX_RADIUS * scale)
    w = 2 * half + 3
    c0 = np.floor(cx).astype(np.int64) - half - 1
    r0 = np.floor(cy).astype(np.int64) - half - 1
    if c0.min() < 0 or r0.min() < 0 or c0.max() + w > IMAGE_SIZE or r0.max() + w > IMAGE_SIZE:
        raise ValueError("sprite window leaves the frame")  # cannot happen for pos in [0, 1]
    offs = np.arange(w)
    u = ((c0[:, None] + offs + 0.5) - cx[:, None]).astype(np.float32)  # (nx, w)
    v = ((r0[:, None] + offs + 0.5) - cy[:, None]).astype(np.float32)  # (ny, w)
    patch = inside(shape, scale, theta, u[:, None, None, :], v[None, :, :, None])  # (nx,ny,w,w)
    img = np.zeros((nx, ny, IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    for i in range(nx):
        ci = int(c0[i])
        for j in range(ny):
            rj = int(r0[j])
            img[i, j, rj : rj + w, ci : ci + w] = patch[i, j]
    return np.packbits(img.reshape(nx * ny, IMAGE_SIZE * IMAGE_SIZE), axis=1)


def iter_packed(
    grid: Grid,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
):
    """Yield ``(start, packed)`` blocks of the grid in order; ``packed`` is (B, 512) uint8.

    Blocks are rendered by ``workers`` threads (NumPy releases the GIL in the big array work) and
    yielded in order, at most ``2 * workers`` in flight, so memory stays a few MB.
    """
    n_blocks = _block_count(grid)
    per_block = grid.sizes[4] * grid.sizes[5]
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending = []
        nxt = 0
        while nxt < n_blocks or pending:
            while nxt < n_blocks and len(pending) < 2 * max(1, workers):
                pending.append((nxt, pool.submit(_render_block, grid, nxt)))
                nxt += 1
            b, fut = pending.pop(0)
            packed = fut.result()
            yield b * per_block, packed
            done += len(packed)
            if progress is not None:
                progress(done, grid.n)


def generate_packed(grid: Grid, workers: int = 2) -> np.ndarray:
    """The whole grid as one packed (N, 512) array in memory (for small grids and tests)."""
    out = np.empty((grid.n, PACKED_BYTES), dtype=np.uint8)
    for start, packed in iter_packed(grid, workers):
        out[start : start + len(packed)] = packed
    return out


def unpack(packed: np.ndarray) -> np.ndarray:
    """(M, 512) packed -> (M, 64, 64) uint8 0/1."""
    bits = np.unpackbits(np.asarray(packed), axis=1)
    return bits.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)


def metadata(grid: Grid) -> dict:
    """The ``metadata`` dict of the original file, with this grid's sizes and values."""
    return {
        "date": "April 2017",
        "description": (
            "Disentanglement test Sprites dataset. Procedurally generated 2D shapes, from 6 "
            "disentangled latent factors. This dataset uses 6 latents, controlling the color, "
            "shape, scale, rotation and position of a sprite. All possible variations of the "
            "latents are present. Ordering along dimension 1 is fixed and can be mapped back to "
            "the exact latent values that generated that image. Pixel outputs are different. "
            "No noise added. (Regenerated procedurally by bvae-tui.)"
        ),
        "version": 1,
        "latents_names": FACTOR_NAMES,
        "latents_possible_values": {
            name: np.asarray(vals, dtype=np.float64)
            for name, vals in zip(FACTOR_NAMES, grid.values, strict=True)
        },
        "latents_sizes": np.array(grid.sizes, dtype=np.int64),
        "author": "bvae-tui procedural generator after Matthey et al., dSprites (DeepMind)",
        "title": "dSprites dataset",
    }
