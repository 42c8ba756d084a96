"""color-, noisy- and scream-dSprites: the binary dSprites sprites drawn in a colour, on noise or
on a patch of *The Scream*, per observation, as disentanglement_lib's
``data/ground_truth/dsprites.py`` draws them for Locatello et al. (2019):

* ``color``: the sprite in one colour per observation, each RGB channel uniform in [0.5, 1], on
  black (``sprite * colour``).
* ``noisy``: a background of uniform noise in [0, 1] per pixel and channel, the sprite white
  (``min(sprite + noise, 1)``).
* ``scream``: a random 64x64 patch of the (shrunk) painting, shifted in colour by a uniform
  amount per channel and halved (``(patch + shift) / 2``), the sprite's pixels inverted
  (``1 - background`` there).

Nothing new is stored: a variant opens its base's prepared cache (``dsprites`` or
``dsprites-mini``, real or procedural) and draws the colour, noise or patch when a batch is made,
on the device that holds the batch (:meth:`Variant.apply`, called by ``DeviceImages.batch`` and
by :meth:`VariantDataset.float_images_at`). The registry's functions (loader, prepare, download)
send a variant's name to its base and wrap what they open in :class:`VariantDataset`; this module
imports none of them, so no import cycle runs through it.

Where disentanglement_lib draws a fresh colour from one random stream at every sampling, the
draws of observation ``i`` here are a counter-based hash of (seed, variant, ``i``, draw number),
so the same index and seed give the same image in any batch, in any order, on the CPU or a GPU
(integer arithmetic, exact everywhere). Training batches, metric draws, probes, baselines and the
explore view therefore see one fixed data set, and the encoder-mean tables the metrics keep per
index stay true. The variant seed is :data:`SEED` for every run, so runs on one variant see the
same images (their training seeds still order the batches).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bvae_tui.datasets import scream
from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.registry import DatasetSpec

KINDS = ("color", "noisy", "scream")
SEED = 0
SIDE = 64
# Each kind hashes with its own stream, so that no two kinds share draws.
_STREAM = {"color": 0x1C01, "noisy": 0x2A15, "scream": 0x3B3A}
_MASK = 0xFFFFFFFF
# An odd multiplier below 2**31: a 32-bit value times it stays below 2**63, so the int64
# arithmetic never overflows and gives the same bits on every device.
_MUL = 0x045D9F3B
_COUNTER_SALT = 0x2545F491
# Observations per piece of a batch: bounds the int64 temporaries of the noise (12,288 draws an
# image, ~100 KB each) at ~25 MB, whatever the batch size of the caller.
_PIECE = 256


def kind_of(spec: DatasetSpec) -> str | None:
    """The variant ``spec`` is (``color`` / ``noisy`` / ``scream``), or None."""
    return spec.extra.get("variant")


def base_of(spec: DatasetSpec) -> str:
    """The dataset whose cache ``spec`` draws from."""
    return str(spec.extra["base"])


# --- the per-observation draws -------------------------------------------------------------------

def _mix(x):
    """A bijective 32-bit integer hash of each element of an int64 tensor in [0, 2**32) (a new
    tensor; in place after the first step: the noise hashes 12,288 draws an image)."""
    x = x ^ (x >> 16)
    x.mul_(_MUL).bitwise_and_(_MASK)
    x.bitwise_xor_(x >> 16)
    x.mul_(_MUL).bitwise_and_(_MASK)
    return x.bitwise_xor_(x >> 16)


def draw_bits(seed: int, kind: str, idx, count: int):
    """int64 (B, ``count``) uniform 32-bit draws of the observations ``idx`` (an int64 tensor;
    the result is on its device): draw ``j`` of observation ``i`` depends on (seed, kind, i, j)
    only."""
    import torch

    base = _mix(torch.tensor(int(seed) & _MASK, dtype=torch.int64, device=idx.device))
    base = _mix(base ^ _STREAM[kind])
    keys = _mix(base ^ (idx.to(torch.int64) & _MASK))  # a bijection of the index, per seed
    counters = _mix(torch.arange(count, dtype=torch.int64, device=idx.device) ^ _COUNTER_SALT)
    return _mix(keys[:, None] ^ counters[None, :])


def to_unit(bits):
    """float32 in [0, 1) from 32-bit draws: their top 24 bits, exact in float32."""
    import torch

    return (bits >> 8).to(torch.float32) * (1.0 / (1 << 24))


def below(bits, n: int):
    """int64 in [0, n) from 32-bit draws, like ``randint(0, n)``: (top 24 bits * n) >> 24."""
    return ((bits >> 8) * int(n)) >> 24


class Variant:
    """How a variant turns binary sprites into RGB observations; ``background``: the shrunk
    painting, float32 (H, W, 3) in [0, 1], for ``scream``."""

    def __init__(self, kind: str, seed: int = SEED, background: np.ndarray | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown dSprites variant {kind!r}; expected one of {KINDS}")
        if kind == "scream" and background is None:
            raise ValueError("scream needs its background image")
        self.kind = kind
        self.seed = int(seed)
        self.background = background
        self._on_device: dict[str, object] = {}  # the background, (3, H*W), per device

    def __repr__(self) -> str:
        return f"Variant({self.kind!r}, seed={self.seed})"

    def apply(self, sprites, idx):
        """float32 (B, 3, 64, 64) in [0, 1] from float sprites (B, 1, 64, 64) of 0/1 and their
        dataset indices ``idx`` (B,), on the sprites' device."""
        import torch

        idx = idx.to(sprites.device).reshape(-1)
        b = sprites.shape[0]
        out = torch.empty((b, 3, SIDE, SIDE), dtype=torch.float32, device=sprites.device)
        for start in range(0, b, _PIECE):
            part = slice(start, min(b, start + _PIECE))
            out[part] = self._draw(sprites[part].to(torch.float32), idx[part])
        return out

    def _draw(self, sprites, idx):
        import torch

        if self.kind == "color":
            colour = 0.5 + 0.5 * to_unit(draw_bits(self.seed, "color", idx, 3))  # (B, 3)
            return sprites * colour[:, :, None, None]
        if self.kind == "noisy":
            noise = to_unit(draw_bits(self.seed, "noisy", idx, 3 * SIDE * SIDE))
            return torch.clamp(sprites + noise.reshape(-1, 3, SIDE, SIDE), max=1.0)
        rows, cols, shift = self.scream_draws(idx)
        bg = self._background_on(sprites.device)
        width = self.background.shape[1]
        span = torch.arange(SIDE, dtype=torch.int64, device=sprites.device)
        at = ((rows[:, None] + span) * width)[:, :, None] + (cols[:, None] + span)[:, None, :]
        patch = bg[:, at.reshape(-1)].reshape(3, -1, SIDE, SIDE).transpose(0, 1)
        background = (patch + shift[:, :, None, None]) / 2.0
        return torch.where(sprites > 0.5, 1.0 - background, background)

    def scream_draws(self, idx):
        """(top row (B,), left column (B,), colour shift (B, 3)) of each observation's patch:
        row in [0, H - 64), column in [0, W - 64) (``randint(0, H - 64)`` in the recipe), shift
        uniform in [0, 1)."""
        height, width = self.background.shape[:2]
        bits = draw_bits(self.seed, "scream", idx, 5)
        return below(bits[:, 0], height - SIDE), below(bits[:, 1], width - SIDE), \
            to_unit(bits[:, 2:5])

    def _background_on(self, device):
        import torch

        key = str(device)
        if key not in self._on_device:
            flat = np.ascontiguousarray(self.background.transpose(2, 0, 1).reshape(3, -1))
            self._on_device[key] = torch.from_numpy(flat).to(device)
        return self._on_device[key]


# --- the dataset --------------------------------------------------------------------------------

class VariantDataset:
    """A dSprites variant over its base's opened cache (a ``loader.Dataset``): 3 channels, not
    binary, images drawn by :attr:`variant`. Everything else is the base's (``__getattr__``):
    the stored rows stay its bit-packed sprites (``packed``, ``crops``), which ``DeviceImages``
    holds and colours per batch, and the factor tables, ``index_of``, ``sample_factors``."""

    def __init__(self, base: Any, spec: DatasetSpec, root: Path):
        self.base = base
        self.spec = spec
        self.name = spec.name
        kind = kind_of(spec)
        self.variant = Variant(kind, SEED, load_scream(spec, root) if kind == "scream" else None)
        self.channels = 3
        self.binary = False

    def __getattr__(self, attr: str) -> Any:
        if attr == "base":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(attr)
        return getattr(self.base, attr)

    def __len__(self) -> int:
        return int(self.base.n)

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, n={self.base.n}, source={self.base.source!r}, " \
               f"{self.variant!r})"

    def float_images_at(self, idx) -> np.ndarray:
        """float32 (M, 3, 64, 64) in [0, 1]: the same values ``DeviceImages.batch`` makes."""
        import torch

        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        sprites = self.base.images_at(idx)  # (M, 1, 64, 64) of 0/1; checks the range
        x = torch.from_numpy(np.ascontiguousarray(sprites)).to(torch.float32)
        return self.variant.apply(x, torch.from_numpy(idx)).numpy()

    def images_at(self, idx) -> np.ndarray:
        """uint8 (M, 3, 64, 64) in 0..255 (rounded from :meth:`float_images_at`)."""
        return np.rint(self.float_images_at(idx) * np.float32(255.0)).astype(np.uint8)

    def images_for(self, classes) -> np.ndarray:
        """uint8 (M, 3, 64, 64) images of the given factor classes."""
        return self.images_at(self.base.index_of(classes))


def load_scream(spec: DatasetSpec, root: Path) -> np.ndarray:
    path = scream.find_scream(root)
    if path is None:
        raise scream.missing_error(spec.name, root)
    return scream.load_background(path)


# --- what the registry's functions ask of a variant ----------------------------------------------

def check_source(spec: DatasetSpec, root: Path) -> None:
    """The one-line error a variant's own source would raise (scream: the image missing or
    unusable); nothing for color and noisy, which need only their base."""
    if kind_of(spec) == "scream":
        load_scream(spec, root)


def status(spec: DatasetSpec, base_status: dict, root: Path) -> dict:
    """``loader.dataset_status`` of a variant from its base's (the cache it draws from), under
    its own name; a scream variant without its image is not prepared, and says how to get it.
    (Cheap: the image's presence only; opening the data set decodes it.)"""
    st = {**base_status, "name": spec.name, "title": spec.title}
    if kind_of(spec) == "scream" and st["problem"] is None and scream.find_scream(root) is None:
        st.update(prepared=False, count=None, problem=str(scream.missing_error(spec.name, root)),
                  fix=f"bvae data download {spec.name}")
    return st


def check_downloadable(spec: DatasetSpec, downloadable) -> None:
    """color and noisy download their base's file (the real dSprites npz): a one-line error
    when the base has none to download (``downloadable``: the names that do)."""
    base = base_of(spec)
    if base not in downloadable:
        raise DataError(f"dataset '{spec.name}' has nothing to download (it is drawn from the "
                        f"procedural {base}); run: bvae data prepare {spec.name}")
