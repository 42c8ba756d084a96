"""Probe metrics during training: which latent carries which factor, every ``probe_every`` steps.

A probe encodes a fixed sample of the dataset with the current encoder and scores it with the
code `bvae eval` scores MIG with (:func:`~bvae_tui.engine.analysis.metrics.mig.plan_mig` draws the
sample, :func:`~bvae_tui.engine.analysis.encode.encode_table` encodes it,
:func:`~bvae_tui.engine.analysis.metrics.mig.score_mig` discretises and scores it). The sample is
MIG's own draw at seed :data:`PROBE_SEED` and :data:`PROBE_POINTS` points, so `bvae eval
--metrics mig` with those sizes on a checkpoint of the same step reads the same points and gives
the same matrix; the rows record seed, size and a digest of the indices.

Encoding converts a model's memory layout (channels-last) and switches it to eval mode, so a
probe encodes a copy: the training model, its layout and its RNG streams are left as they were,
and a resumed run trains exactly as an uninterrupted one.
"""

from __future__ import annotations

import copy
import hashlib
import time
from typing import Any

import numpy as np
import torch

from bvae_tui.engine.analysis.encode import encode_table
from bvae_tui.engine.analysis.metrics.ground_truth import GroundTruth
from bvae_tui.engine.analysis.metrics.mig import MIGPlan, plan_mig, score_mig
from bvae_tui.engine.runs.records import ProbeRow

PROBE_SEED = 0  # bvae eval's default metric seed: the probe's points are the first of MIG's
# A multiple of the 16 points MIG draws at a time, so these are exactly the first PROBE_POINTS of
# eval's 10,000 MIG points at the same seed. Enough for 20 bins x 40 orientations to be filled
# on average; about 0.2% of CPU training time at the default interval (benchmarks/RESULTS.md).
PROBE_POINTS = 3072
PROBE_BINS = 20


class Prober:
    """The probe of one training run: the sample is drawn once (on the first probe)."""

    def __init__(self, dataset: Any, device: str, points: int | None = None,
                 seed: int = PROBE_SEED, num_bins: int = PROBE_BINS):
        self.dataset = dataset
        self.device = device
        # Read at construction, not definition: the tests probe fewer points.
        self.points = int(points or PROBE_POINTS)
        self.seed, self.num_bins = int(seed), int(num_bins)
        self._gt: GroundTruth | None = None
        self._plan: MIGPlan | None = None
        self._sha1 = ""

    def _sample(self) -> tuple[GroundTruth, MIGPlan]:
        if self._gt is None or self._plan is None:
            self._gt = GroundTruth(self.dataset)
            self._plan = plan_mig(self._gt, seed=self.seed, num_train=self.points,
                                  num_bins=self.num_bins)
            self._sha1 = sample_digest(self._plan.idx)
        return self._gt, self._plan

    def probe(self, model: torch.nn.Module, iteration: int) -> ProbeRow:
        """Score ``model``'s encoder now (the model itself is not changed)."""
        start = time.perf_counter()
        gt, plan = self._sample()
        encoder = copy.deepcopy(model)  # encode_table switches layout and mode in place
        # The images are unpacked on the CPU batch by batch: uploading the dataset again to the
        # GPU, as eval does, would double the training's memory for a few thousand images.
        table = encode_table(encoder, self.dataset, np.unique(plan.idx), self.device,
                             device_images=False)
        result = score_mig(plan, table, gt)
        return probe_row(iteration, result, list(gt.names), self, time.perf_counter() - start)


def sample_digest(indices: np.ndarray) -> str:
    """SHA-1 of a sample's dataset indices, as int64 in order."""
    return hashlib.sha1(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()


def probe_row(iteration: int, result: dict[str, Any], factors: list[str], prober: Prober,
              seconds: float) -> ProbeRow:
    """A :class:`ProbeRow` from ``score_mig``'s result: the nats divided by factor entropy."""
    nats = np.asarray(result["mi"], dtype=np.float64)
    h = np.asarray(result["entropy"], dtype=np.float64)
    shares = np.divide(nats, h, out=np.zeros_like(nats), where=h > 0)
    return ProbeRow(
        iter=int(iteration), time=time.time(), mig=float(result["score"]), factors=factors,
        mi=[[float(v) for v in row] for row in shares], factor_entropy=[float(v) for v in h],
        best_latent=[int(j) for j in shares.argmax(axis=0)],
        gaps=[float(result["per_factor"][name]) for name in factors],
        sample_seed=prober.seed, sample_size=prober.points, sample_sha1=prober._sha1,
        num_bins=prober.num_bins, seconds=round(seconds, 4))
