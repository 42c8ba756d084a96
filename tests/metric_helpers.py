"""A factor grid without images, and representations of it, for testing metrics by definition."""

from __future__ import annotations

import numpy as np

from bvae_tui.engine.analysis import metrics as M


class Grid:
    """Every combination of ``sizes`` once, like dSprites: what the metrics need of a dataset
    (factor sizes and names, index of a factor combination, the factor values)."""

    def __init__(self, sizes: tuple[int, ...]) -> None:
        self.name = "grid"
        self.factor_sizes = tuple(sizes)
        self.factor_names = tuple(f"f{k}" for k in range(len(sizes)))
        self.n = int(np.prod(sizes))
        self.classes = np.stack(np.unravel_index(np.arange(self.n), sizes), axis=1)
        self.values = self.classes.astype(np.float64)

    def index_of(self, classes: np.ndarray) -> np.ndarray:
        classes = np.asarray(classes)
        return np.ravel_multi_index(tuple(classes.T), self.factor_sizes)


def standardised(grid: Grid) -> np.ndarray:
    v = grid.values
    return (v - v.mean(axis=0)) / v.std(axis=0)


def rotation(k: int, seed: int = 0) -> np.ndarray:
    """A random orthogonal k x k matrix with every entry at least 0.15 in size: each latent of a
    rotated code mixes every factor."""
    rng = np.random.RandomState(seed)
    while True:
        q, _ = np.linalg.qr(rng.randn(k, k))
        if np.abs(q).min() >= 0.15:
            return q


def noise_table(dim: int, seed: int = 0) -> M.FunctionTable:
    """A representation that says nothing about the image: fresh noise on every lookup."""
    rng = np.random.RandomState(seed)
    return M.FunctionTable(lambda idx: rng.randn(len(idx), dim), dim)


def score(dataset, table, params: dict, metrics=None, seed: int = 0) -> dict:
    names = list(metrics or params)
    return M.evaluate_representation(dataset, lambda needed: table, names,
                                     {m: params[m] for m in names}, seed)
