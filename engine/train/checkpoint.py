"""Checkpoints: atomic, loadable with ``torch.load(weights_only=True)``, CPU-loadable.

A checkpoint is a plain dict of tensors and Python primitives (no pickled classes), so the safe
``weights_only`` loader reads it and a GPU run's checkpoint opens on a CPU-only machine:

    {"format": 1, "model": state_dict, "optimizer": state_dict, "iteration": int,
     "elapsed": float, "arch": str, "channels": int, "z_dim": int, "config": dict,
     "image_size": int  (the side the network is built for; absent before it existed: 64),
     "objective": {...}  (the objective's own state: FactorVAE's discriminator and optimiser),
     "rng": {"torch": ByteTensor, "cuda": [ByteTensor, ...], "numpy": {...}, "python": [...],
             "batches": {...}}}

Every tensor is moved to the CPU before saving.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bvae_tui.engine.atomic import atomic_path
from bvae_tui.engine.errors import RunError
from bvae_tui.engine.runs.guard import real_subdir
from bvae_tui.engine.runs.recovery import usable_checkpoint
from bvae_tui.errors import brief

if TYPE_CHECKING:
    import torch

    from bvae_tui.engine.config import TrainConfig
    from bvae_tui.engine.runs.store import Run

FORMAT = 1


def to_cpu(obj: Any) -> Any:
    """A copy of nested dicts/lists/tuples with every tensor on the CPU."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any],
                    keep: str | os.PathLike | None = None) -> None:
    """Write ``state`` (tensors moved to the CPU) to ``path`` atomically.

    The data goes to a temporary file in the same directory, is fsynced, and then renamed over
    ``path``: a crash mid-write leaves the previous checkpoint intact. ``keep``: where the
    checkpoint being replaced is kept, once the new one is safely on disk.
    """
    import torch

    path = Path(path)
    real_subdir(path.parent)  # a link planted as checkpoints/ would take the write elsewhere
    with atomic_path(path, keep=keep) as tmp, open(tmp, "wb") as fh:
        torch.save(to_cpu(state), fh)


def load_checkpoint(path: str | os.PathLike, map_location: str = "cpu") -> dict[str, Any]:
    """Read a checkpoint with the safe loader; a :class:`RunError` one-liner if missing/corrupt."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise RunError(f"checkpoint {path} does not exist; the run has not saved one yet")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise RunError(f"checkpoint {path} is corrupt or unreadable ({brief(exc)}); "
                       "resume from an earlier copy or start a new run") from None
    if not isinstance(state, dict) or "model" not in state or "iteration" not in state:
        raise RunError(f"checkpoint {path} is not a bvae checkpoint (no model/iteration); "
                       "start a new run") from None
    return state


def checkpoint_path(run: Run, checkpoint: str | os.PathLike | None = None) -> Path:
    """``checkpoint`` as given (a path, or a file name in the run's checkpoints/), else last.pt,
    or the checkpoint before it when last.pt is unreadable (a warning on stderr says so)."""
    if checkpoint is None:
        usable = usable_checkpoint(run)
        if usable.damaged:
            raise RunError(f"run {run.id} has no readable checkpoint ({usable.note}); "
                           f"'bvae resume {run.id} --restart' trains it again")
        if usable.note:
            print(f"warning: {usable.note}", file=sys.stderr, flush=True)
        return usable.path or run.last_checkpoint
    path = Path(checkpoint)
    if not path.exists() and (run.checkpoint_dir / path).exists():
        return run.checkpoint_dir / path
    return path


def model_from_state(state: dict[str, Any], cfg: TrainConfig | None = None) -> torch.nn.Module:
    """Rebuild the model recorded in a checkpoint and load its weights (CPU, eval mode)."""
    from bvae_tui.engine.train.models import build_model

    arch = state.get("arch") or (cfg.architecture if cfg else "H")
    z_dim = int(state.get("z_dim") or (cfg.z_dim if cfg else 10))
    channels = int(state.get("channels") or 1)
    # Checkpoints made before --image-size existed hold 64x64 networks and say nothing.
    size = int(state.get("image_size") or (cfg.image_size if cfg else 64))
    try:
        model = build_model(arch, channels, z_dim, size)
    except ValueError as exc:
        raise RunError(f"checkpoint records an unusable model ({exc}); the checkpoint is "
                       "corrupt") from None
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError) as exc:
        raise RunError(f"checkpoint weights do not fit a {arch} model with z_dim {z_dim} at "
                       f"{size}x{size} ({brief(exc, 100)}); the checkpoint is corrupt") from None
    return model.eval()


def load_model(run: Run, checkpoint: str | os.PathLike | None = None,
               device: str = "cpu") -> tuple[torch.nn.Module, TrainConfig, int]:
    """The run's trained model (eval mode, on ``device``), its config and its iteration."""
    cfg = run.config
    state = load_checkpoint(checkpoint_path(run, checkpoint))
    model = model_from_state(state, cfg)
    return model.to(device), cfg, int(state["iteration"])
