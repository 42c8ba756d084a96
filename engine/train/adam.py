"""The training optimiser: Adam on PyTorch's fused kernel, without torch.optim's start-up cost.

:class:`Adam` calls ``torch._fused_adam_`` directly. That op is private: a torch release may
rename it or change its signature. :func:`make_adam` therefore checks it once per process and
device type on a tiny tensor against Adam's formula, and when the check fails it falls back to
``torch.optim.Adam`` (fused on CUDA, PyTorch's default on the CPU) and says so on stderr (which a
detached worker writes to worker.log). Both optimisers write the same state-dict format, so a
checkpoint written by either loads into the other (:func:`load_optimizer_state`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch

from bvae_tui.engine.train.process import is_cuda

if TYPE_CHECKING:
    from bvae_tui.engine.config import TrainConfig

# Group keys that choose torch.optim.Adam's implementation. torch.optim's load_state_dict copies
# them from the saved group, so a checkpoint would otherwise carry the writer's choice along.
IMPLEMENTATION_KEYS = ("fused", "foreach", "capturable", "differentiable")

# device type -> None when torch._fused_adam_ passed its check there, else why it did not.
_probed: dict[str, str | None] = {}


class Adam:
    """Adam with ``torch.optim.Adam(fused=True)``'s arithmetic and state-dict format.

    Why not ``torch.optim.Adam`` itself: every ``torch.optim`` optimiser imports ``torch._dynamo``
    (with sympy, ~900 modules) the first time one of its methods runs, which costs resident memory
    and seconds before the first training step (benchmarks/RESULTS.md, "The fast paths"). This
    class calls the same fused kernel (one kernel for all parameters, on CPU and CUDA) without that
    import. Its ``state_dict`` is the one ``torch.optim.Adam`` writes, and ``load_state_dict``
    accepts one written by ``torch.optim.Adam`` (fused, foreach or for-loop).
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params: list[torch.Tensor] = list(params)
        self.param_groups: list[dict[str, Any]] = [{
            "params": self.params, "lr": lr, "betas": tuple(betas), "eps": eps,
            "weight_decay": 0.0, "amsgrad": False, "maximize": False, "foreach": None,
            "capturable": False, "differentiable": False, "fused": True,
            "decoupled_weight_decay": False,
        }]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def _new_state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        params, grads, avgs, sqs, steps = [], [], [], [], []
        for p in self.params:
            if p.grad is None:
                continue
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = self._new_state(p)
            params.append(p)
            grads.append(p.grad)
            avgs.append(state["exp_avg"])
            sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])
        if not params:
            return
        torch._foreach_add_(steps, 1)
        beta1, beta2 = group["betas"]
        torch._fused_adam_(params, grads, avgs, sqs, [], steps, amsgrad=False,
                           lr=float(group["lr"]), beta1=float(beta1), beta2=float(beta2),
                           weight_decay=0.0, eps=float(group["eps"]), maximize=False,
                           grad_scale=None, found_inf=None)

    def state_dict(self) -> dict[str, Any]:
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        group["params"] = list(range(len(self.params)))
        state = {i: dict(self.state[p]) for i, p in enumerate(self.params) if p in self.state}
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        groups = state_dict["param_groups"]
        saved = [i for g in groups for i in g["params"]]
        if len(groups) != 1 or len(saved) != len(self.params):
            raise ValueError("optimizer state does not match the model's parameters")
        for key in ("lr", "betas", "eps"):
            if key in groups[0]:
                self.param_groups[0][key] = groups[0][key]
        self.param_groups[0]["betas"] = tuple(self.param_groups[0]["betas"])
        self.state = {}
        for pos, index in enumerate(saved):
            entry = state_dict["state"].get(index)
            if not entry:
                continue
            p = self.params[pos]
            self.state[p] = {
                "step": torch.as_tensor(entry["step"]).to(dtype=torch.float32, device=p.device),
                "exp_avg": entry["exp_avg"].to(dtype=p.dtype, device=p.device),
                "exp_avg_sq": entry["exp_avg_sq"].to(dtype=p.dtype, device=p.device),
            }


# What make_adam returns; the trainer uses the methods the two share.
Optimizer = Adam | torch.optim.Adam


def _reference_adam(p: list[float], grads: list[list[float]], lr: float,
                    betas: tuple[float, float], eps: float) -> list[float]:
    """Adam's update rule (Kingma & Ba, with PyTorch's placement of eps) in float64 Python."""
    b1, b2 = betas
    m, v, out = [0.0] * len(p), [0.0] * len(p), list(p)
    for t, g in enumerate(grads, start=1):
        for i, gi in enumerate(g):
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            denom = math.sqrt(v[i]) / math.sqrt(1 - b2**t) + eps
            out[i] -= lr / (1 - b1**t) * m[i] / denom
    return out


def _check_fused_adam(device: str) -> str | None:
    """None when :class:`Adam` computes Adam's update on ``device``, else the reason it does not."""
    start, grads = [0.5, -1.0, 2.0], [[0.1, 0.2, -0.3], [-0.4, 0.05, 0.3]]
    lr, betas, eps = 0.1, (0.9, 0.999), 1e-8
    try:
        p = torch.tensor(start, dtype=torch.float32, device=device)
        opt = Adam([p], lr=lr, betas=betas, eps=eps)
        for g in grads:
            p.grad = torch.tensor(g, dtype=torch.float32, device=device)
            opt.step()
        got = p.cpu().tolist()
    except Exception as exc:  # missing (AttributeError), new signature (TypeError), no kernel
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"{type(exc).__name__}: {first[:160]}"
    want = _reference_adam(start, grads, lr, betas, eps)
    close = (math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6) for a, b in zip(got, want, strict=True))
    if not all(close):
        return f"it computed {got} where Adam's rule gives {want}"
    return None


def fused_adam_problem(device: str) -> str | None:
    """Why ``torch._fused_adam_`` cannot be used on ``device`` (None: it can). Checked once per
    process and device type; the first failure is reported on stderr."""
    kind = torch.device(device).type
    if kind not in _probed:
        problem = _probed[kind] = _check_fused_adam(device)
        if problem is not None:
            print(f"warning: torch {torch.__version__}: the private op torch._fused_adam_ failed "
                  f"its start-up check on {kind} ({problem}); training uses torch.optim.Adam "
                  f"instead (the same update up to rounding; more memory and a slower start)",
                  file=sys.stderr, flush=True)
    return _probed[kind]


def make_adam(params: Iterable[torch.Tensor], device: str, lr: float,
              betas: tuple[float, float] = (0.9, 0.999)) -> Optimizer:
    """Adam for ``params`` (which live on ``device``): :class:`Adam` where its kernel passes the
    check, else ``torch.optim.Adam``, fused on CUDA (one kernel for all parameters), PyTorch's
    default on the CPU (fused measured no faster there)."""
    if fused_adam_problem(device) is None:
        return Adam(params, lr=lr, betas=betas)
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=True if is_cuda(device) else None)


def make_optimizer(params: Iterable[torch.Tensor], cfg: TrainConfig, device: str) -> Optimizer:
    """The VAE's optimiser: Adam with ``cfg``'s learning rate and betas."""
    return make_adam(params, device, lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2))


def load_optimizer_state(optimizer: Optimizer, state: dict[str, Any]) -> None:
    """Load a state dict written by either optimiser, keeping ``optimizer``'s own kernel choice."""
    keep = [{k: g[k] for k in IMPLEMENTATION_KEYS if k in g} for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, own in zip(optimizer.param_groups, keep, strict=True):
        group.update(own)
