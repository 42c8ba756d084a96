"""The latent x factor information matrix as a PNG: rows = latents, columns = factors, each cell
the share of the factor's entropy the latent carries (MI / H), coloured dark to bright with its
value, a title naming the run, and a colour scale. numpy and Pillow only."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from bvae_tui.engine.analysis.mi_matrix import MIMatrix, ramp_rgb, share_text
from bvae_tui.engine.analysis.render import LABEL_BG, LABEL_FG, font

CELL_W, CELL_H = 72, 26
LEFT = 44  # latent labels
TOP = 40  # title and factor names
SCALE_H = 34  # colour scale under the grid
MARGIN = 8


def mi_heatmap(matrix: MIMatrix, title: str = "") -> np.ndarray:
    """The heat map as (H, W, 3) uint8: ``TOP + L*CELL_H + SCALE_H`` high for L latents, at
    least ``LEFT + F*CELL_W + MARGIN`` wide for F factors (wider when the title needs it)."""
    shares = matrix.shares()
    rows, cols = matrix.latents, len(matrix.factors)
    face, small = font(12), font(11)
    title = title or "MI(latent; factor) / H(factor)"
    text_w = int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(title, font=face))
    width = max(LEFT + cols * CELL_W + MARGIN, 2 * MARGIN + text_w, 220)
    height = TOP + rows * CELL_H + SCALE_H
    img = Image.new("RGB", (width, height), LABEL_BG)
    draw = ImageDraw.Draw(img)
    draw.text((MARGIN, 4), title, fill=LABEL_FG, font=face)
    for k, name in enumerate(matrix.factors):
        x = LEFT + k * CELL_W
        draw.text((x + 4, TOP - 16), name[:11], fill=LABEL_FG, font=small)
    for i, row in enumerate(shares):
        y = TOP + i * CELL_H
        draw.text((MARGIN, y + 7), f"z{i}", fill=LABEL_FG, font=face)
        for k, value in enumerate(row):
            x = LEFT + k * CELL_W
            draw.rectangle([x, y, x + CELL_W - 2, y + CELL_H - 2], fill=ramp_rgb(value))
            ink = (0, 0, 0) if value > 0.6 else (255, 255, 255)
            draw.text((x + CELL_W // 2 - 10, y + 7), share_text(value), fill=ink, font=face)
    # Colour scale: 0 on the left, 1 on the right.
    y = TOP + rows * CELL_H + 6
    span = width - LEFT - MARGIN
    for px in range(span):
        draw.line([LEFT + px, y, LEFT + px, y + 8], fill=ramp_rgb(px / max(1, span - 1)))
    draw.text((LEFT, y + 11), "0", fill=LABEL_FG, font=small)
    draw.text((LEFT + span - 8, y + 11), "1", fill=LABEL_FG, font=small)
    draw.text((MARGIN, y - 1), "MI/H", fill=LABEL_FG, font=small)
    return np.asarray(img)
