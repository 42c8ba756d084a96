"""Baseline representations of Higgins et al. 2017's table, scored by the same metric code.

- ``ground-truth``: the factor values themselves (the varying factors only): the ceiling.
- ``pixels``: the raw 64x64 images flattened (4,096 numbers for dSprites), computed per lookup
  because a table of them would not fit in memory.
- ``pca``: the first 10 principal components (scikit-learn ``PCA``) fitted on a seeded random
  subset of the images.
- ``untrained``: the encoder mean of a freshly initialised network of the chosen architecture
  (``torch.manual_seed(seed)`` first, so it is reproducible).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bvae_tui.engine.analysis.encode import model_table_maker
from bvae_tui.engine.analysis.metrics import CodeTable, FunctionTable, GroundTruth, Table
from bvae_tui.engine.errors import ConfigError
from bvae_tui.engine.train.models import build_model

BASELINES = ("ground-truth", "pixels", "pca", "untrained")
TITLES = {"ground-truth": "ground truth", "pixels": "raw pixels", "pca": "PCA",
          "untrained": "untrained VAE"}
_ALIASES = {"groundtruth": "ground-truth", "gt": "ground-truth", "truth": "ground-truth",
            "factors": "ground-truth", "pixels": "pixels", "rawpixels": "pixels",
            "raw": "pixels", "pca": "pca", "untrained": "untrained",
            "untrainedvae": "untrained", "random": "untrained"}

PCA_COMPONENTS = 10
PCA_FIT_IMAGES = 10_000  # images the PCA is fitted on (a seeded random subset)
_PCA_CHUNK = 4096  # images unpacked at a time when projecting


def canonical(name: str) -> str:
    """A baseline's canonical name, or a :class:`ConfigError` listing the valid ones."""
    key = _ALIASES.get(name.strip().lower().replace("-", "").replace("_", "").replace(" ", ""))
    if key is None:
        raise ConfigError(f"unknown baseline '{name}'; choose one of: {', '.join(BASELINES)}")
    return key


def _flat_images(dataset: Any, idx: np.ndarray) -> np.ndarray:
    imgs = dataset.float_images_at(np.asarray(idx, dtype=np.int64))
    return imgs.reshape(len(idx), -1)


def ground_truth_table(dataset: Any) -> CodeTable:
    """The varying factors' values (classes where a dataset has no values) for every index."""
    gt = GroundTruth(dataset)
    values = dataset.values if getattr(dataset, "values", None) is not None else dataset.classes
    return CodeTable(np.asarray(values, dtype=np.float64)[:, gt.latent])


def pixels_table(dataset: Any) -> FunctionTable:
    side = int(getattr(dataset, "image_size", 64))
    dim = int(dataset.channels) * side * side
    return FunctionTable(lambda idx: _flat_images(dataset, idx), dim)


def fit_pca(dataset: Any, seed: int = 0, n_images: int = PCA_FIT_IMAGES,
            components: int = PCA_COMPONENTS) -> Any:
    """A scikit-learn PCA fitted on ``n_images`` images drawn (without replacement, seeded)."""
    # Here, not at the top: scikit-learn takes seconds to import and only this baseline needs it
    # before scoring (every `bvae eval` imports this module).
    from sklearn.decomposition import PCA

    rng = np.random.RandomState(seed)
    n = int(dataset.n)
    idx = np.sort(rng.choice(n, size=min(n, n_images), replace=False))
    # A small folder may hold fewer images than components: PCA can find at most that many.
    return PCA(n_components=min(components, len(idx)),
               random_state=seed).fit(_flat_images(dataset, idx))


def pca_table(dataset: Any, needed: np.ndarray, pca: Any,
              progress: Callable[[str, int, int | None], None] | None = None) -> CodeTable:
    codes = np.empty((len(needed), pca.n_components_), dtype=np.float32)
    for s in range(0, len(needed), _PCA_CHUNK):
        chunk = needed[s:s + _PCA_CHUNK]
        codes[s:s + len(chunk)] = pca.transform(_flat_images(dataset, chunk))
        if progress:
            progress("projecting images", s + len(chunk), len(needed))
    return CodeTable(codes, needed, n=int(dataset.n))


def baseline_table_maker(name: str, dataset: Any, device: str = "cpu", seed: int = 0,
                         arch: str = "H", z_dim: int = 10,
                         progress: Callable[[str, int, int | None], None] | None = None
                         ) -> tuple[Callable[[np.ndarray], Table], dict[str, Any]]:
    """``(make_table, info)`` for baseline ``name`` on ``dataset``; ``info`` goes in the result."""
    key = canonical(name)
    if key == "ground-truth":
        return (lambda needed: ground_truth_table(dataset)), {}
    if key == "pixels":
        return (lambda needed: pixels_table(dataset)), {}
    if key == "pca":
        if progress:
            progress("fitting PCA", 0, None)
        pca = fit_pca(dataset, seed)
        info = {"pca_components": PCA_COMPONENTS, "pca_fit_images": min(int(dataset.n),
                                                                        PCA_FIT_IMAGES),
                "pca_explained_variance": float(np.sum(pca.explained_variance_ratio_))}
        return (lambda needed: pca_table(dataset, needed, pca, progress)), info
    # untrained network
    if arch not in ("H", "B"):
        raise ConfigError(f"--arch must be H or B; got {arch!r}")
    torch.manual_seed(seed)
    side = int(getattr(dataset, "image_size", 64))  # the untrained network fits the images
    model = build_model(arch, int(dataset.channels), int(z_dim), side).to(device).eval()
    return model_table_maker(model, dataset, device, progress), {"arch": arch, "z_dim": z_dim}
