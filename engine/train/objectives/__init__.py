"""Training objectives, one module each: :mod:`.h_b` (H and B), :mod:`.tcvae`, :mod:`.factor`,
:mod:`.dip`; the shared terms and the :class:`Objective` interface in :mod:`.common`; which class
is which objective in :mod:`.registry`. A new objective is a module here, an entry in the
registry, and an :class:`~bvae_tui.engine.objective_info.ObjectiveInfo` with its fields in
:mod:`bvae_tui.engine.config`.
"""

from bvae_tui.engine.train.objectives.common import (
    DISTRIBUTIONS,
    ModelOutput,
    Objective,
    kl_per_latent,
    recon_distribution,
    recon_loss,
)
from bvae_tui.engine.train.objectives.h_b import capacity
from bvae_tui.engine.train.objectives.registry import (
    OBJECTIVE_CLASSES,
    build_objective,
    compute_loss,
)

__all__ = ["DISTRIBUTIONS", "OBJECTIVE_CLASSES", "ModelOutput", "Objective", "build_objective",
           "capacity", "compute_loss", "kl_per_latent", "recon_distribution", "recon_loss"]
