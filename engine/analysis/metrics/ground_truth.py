"""Ground-truth factors: sampling them exactly as disentanglement_lib draws them."""

from __future__ import annotations

from typing import Any

import numpy as np

from bvae_tui.datasets.errors import DataError


class GroundTruth:
    """Samples factor classes of a full-grid dataset and maps them to dataset indices.

    Only factors with more than one value are "latent" (dSprites: color is dropped, leaving
    shape, scale, orientation, posX, posY). Draw order matches disentanglement_lib:
    ``sample_factors`` draws each latent factor in turn with ``randint(size, size=n)``; turning
    factors into observations draws each constant factor the same way.
    """

    def __init__(self, dataset: Any):
        sizes = tuple(int(s) for s in (getattr(dataset, "factor_sizes", None) or ()))
        if not sizes:
            name = getattr(dataset, "name", "this dataset")
            raise DataError(f"dataset '{name}' has no ground-truth factors; disentanglement "
                            "metrics need one that has them, e.g. dsprites or dsprites-mini")
        self.dataset = dataset
        self.sizes = sizes
        names = tuple(getattr(dataset, "factor_names", ()) or ())
        self.latent = [i for i, s in enumerate(sizes) if s > 1]
        self.constant = [i for i, s in enumerate(sizes) if s <= 1]
        self.names = [names[i] if i < len(names) else f"factor{i}" for i in self.latent]
        self.num_factors = len(self.latent)
        if self.num_factors == 0:
            raise DataError("dataset has no factor with more than one value; nothing to score")

    @property
    def latent_sizes(self) -> list[int]:
        return [self.sizes[i] for i in self.latent]

    def sample_factors(self, num: int, rng: np.random.RandomState) -> np.ndarray:
        """``(num, num_factors)`` classes of the latent factors, uniform per factor."""
        out = np.empty((num, self.num_factors), dtype=np.int64)
        for pos, i in enumerate(self.latent):
            out[:, pos] = rng.randint(self.sizes[i], size=num)
        return out

    def complete(self, factors: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
        """All factor classes ``(num, F)``: latent ones given, constant ones drawn."""
        full = np.zeros((factors.shape[0], len(self.sizes)), dtype=np.int64)
        full[:, self.latent] = factors
        for i in self.constant:
            full[:, i] = rng.randint(self.sizes[i], size=factors.shape[0])
        return full

    def sample_points(self, num: int, rng: np.random.RandomState,
                      batch_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """``(indices (num,), latent factor classes (num, K))`` of ``num`` random images.

        Drawn ``batch_size`` at a time, each batch's latent factors then its constant ones, as
        disentanglement_lib's ``generate_batch_factor_code`` does (MIG, DCI, SAP, modularity).
        """
        factors, classes = [], []
        done = 0
        while done < num:
            n = min(num - done, batch_size)
            f = self.sample_factors(n, rng)
            factors.append(f)
            classes.append(self.complete(f, rng))
            done += n
        if not factors:
            return np.empty(0, dtype=np.int64), np.empty((0, self.num_factors), dtype=np.int64)
        return self.indices(np.concatenate(classes)), np.concatenate(factors)

    def indices(self, classes: np.ndarray) -> np.ndarray:
        """Dataset indices of ``(..., F)`` factor classes (one call for the whole array)."""
        flat = classes.reshape(-1, classes.shape[-1])
        return np.asarray(self.dataset.index_of(flat), dtype=np.int64).reshape(classes.shape[:-1])
