"""Ground-truth factors: sampling them exactly as disentanglement_lib draws them."""

from __future__ import annotations

from typing import Any

import numpy as np

from bvae_tui.datasets.errors import DataError

# Images BetaVAE and FactorVAE draw their batches from by default (see Pool): about a sixth of
# dSprites, so a CPU encodes them in well under a minute, with every class of every factor
# represented by thousands of members. ``--fast`` draws from fewer; ``--exact`` from all.
POOL = 1 << 17
FAST_POOL = 1 << 15


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
            from bvae_tui.datasets.registry import factors_fix

            raise DataError(f"dataset '{name}' has no ground-truth factors; disentanglement "
                            f"metrics need them: {factors_fix(str(name))}")
        self.dataset = dataset
        self.sizes = sizes
        names = tuple(getattr(dataset, "factor_names", ()) or ())
        # A nuisance factor (SmallNORB's instance) is drawn at random for each observation, like
        # a constant one, and not scored: disentanglement_lib's SplitDiscreteStateSpace.
        nuisance = set(getattr(dataset, "nuisance_factors", ()) or ())
        self.latent = [i for i, s in enumerate(sizes)
                       if s > 1 and (names[i] if i < len(names) else None) not in nuisance]
        self.constant = [i for i in range(len(sizes)) if i not in self.latent]
        self.names = [names[i] if i < len(names) else f"factor{i}" for i in self.latent]
        self.num_factors = len(self.latent)
        if self.num_factors == 0:
            raise DataError("dataset has no factor with more than one value; nothing to score")
        self._pools: dict[tuple[int, int], Pool] = {}  # BetaVAE and FactorVAE share theirs
        # A folder's factors.csv may not cover every combination (datasets.folder_factors):
        # then every draw is of an existing image, never of a combination that has none.
        self.complete_grid = bool(getattr(dataset, "complete_grid", True))

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
        if not self.complete_grid:  # uniform over the images that exist
            rows = rng.randint(int(self.dataset.n), size=num).astype(np.int64)
            return rows, self.latent_classes(rows)
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

    def latent_classes(self, rows: np.ndarray) -> np.ndarray:
        """``(M, K)`` latent factor classes of the images at ``rows``."""
        return np.asarray(self.dataset.classes[np.asarray(rows, dtype=np.int64)],
                          dtype=np.int64)[:, self.latent]

    def sampling(self) -> dict[str, str]:
        """What a result says of its draws on an incomplete grid (nothing on a full one)."""
        if self.complete_grid:
            return {}
        n, full = int(self.dataset.n), int(np.prod(self.sizes))
        return {"sampling": f"the factor grid is incomplete ({n:,} of {full:,} combinations "
                            "have an image): batches drawn among existing combinations only"}

    def indices(self, classes: np.ndarray) -> np.ndarray:
        """Dataset indices of ``(..., F)`` factor classes (one call for the whole array)."""
        flat = classes.reshape(-1, classes.shape[-1])
        return np.asarray(self.dataset.index_of(flat), dtype=np.int64).reshape(classes.shape[:-1])

    def pool(self, size: int, seed: int) -> Pool | None:
        """The shared :class:`Pool` of ``size`` draws for ``seed``; None where it would not save
        anything (a dataset no larger than the pool is encoded whole anyway)."""
        n = int(self.dataset.n)
        if self.complete_grid and (size <= 0 or size >= n):
            return None
        key = (int(size), int(seed))
        if key not in self._pools:
            rows = None
            if not self.complete_grid:  # always a pool: it holds only existing combinations
                rows = (np.arange(n) if size <= 0 or size >= n else np.random.RandomState(
                    np.random.SeedSequence([int(seed), _POOL_STREAM]).generate_state(1)[0]
                ).choice(n, size=int(size), replace=False))
            self._pools[key] = Pool(self, size, seed, rows)
        return self._pools[key]


# Keeps the pool's random stream apart from the metrics' own (which reuse the metric seed).
_POOL_STREAM = 0x9001


class Pool:
    """A uniform random sample of distinct images that the batch metrics draw from.

    BetaVAE and FactorVAE draw nearly three million images at disentanglement_lib's sizes, which on
    dSprites touches nearly all 737,280 of them: encoding them is most of a CPU evaluation. Drawn
    from a pool instead, a batch keeps its definition (random images; images that share one
    factor's value with another) but every image comes from this sample, so encoding is bounded by
    the pool's size. A pool is drawn as ``sample_points`` draws random points, with its own seeded
    stream, and duplicate draws are kept once.
    """

    def __init__(self, gt: GroundTruth, size: int, seed: int, rows: np.ndarray | None = None):
        """``rows``: the members themselves (an incomplete grid's images) instead of draws."""
        if rows is None:
            stream = np.random.SeedSequence([int(seed), _POOL_STREAM]).generate_state(1)[0]
            idx, factors = gt.sample_points(int(size), np.random.RandomState(stream))
        else:
            idx = np.asarray(rows, dtype=np.int64)
            factors = gt.latent_classes(idx)
        self.indices, first = np.unique(idx, return_index=True)
        self.factors = factors[first]  # (N, K) latent factor classes of each member
        # Per factor: members ordered by that factor's class, and where each class starts.
        self._order = [np.argsort(self.factors[:, k], kind="stable")
                       for k in range(gt.num_factors)]
        self._start = [np.searchsorted(self.factors[order, k], np.arange(size_k + 1))
                       for k, (order, size_k) in enumerate(zip(self._order, gt.latent_sizes,
                                                                strict=True))]

    def __len__(self) -> int:
        return len(self.indices)

    def random(self, shape: tuple[int, ...], rng: np.random.RandomState) -> np.ndarray:
        """Positions (not dataset indices) of uniformly drawn members."""
        return rng.randint(len(self.indices), size=shape)

    def matching(self, factors: np.ndarray | int, classes: np.ndarray,
                 rng: np.random.RandomState) -> np.ndarray:
        """Positions of members drawn uniformly among those whose factor ``factors`` has
        ``classes``, elementwise (``factors`` broadcasts against ``classes``: one factor for all,
        or one per row). Every class asked for must occur in the pool: draw classes from members.
        Draws go factor by factor, each factor's elements in row-major order."""
        classes = np.asarray(classes, dtype=np.int64)
        factors = np.broadcast_to(np.asarray(factors, dtype=np.int64), classes.shape)
        out = np.empty(classes.shape, dtype=np.int64)
        for k in range(len(self._order)):
            mask = factors == k
            wanted = classes[mask]
            start, stop = self._start[k][wanted], self._start[k][wanted + 1]
            if (stop <= start).any():
                raise ValueError("a class with no pool member was asked for")
            offset = rng.randint(stop - start)  # elementwise, each in [0, its class's count)
            out[mask] = self._order[k][start + offset]
        return out
