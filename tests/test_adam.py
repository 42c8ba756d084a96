"""The private fused Adam op is checked once at start-up; where it fails, torch.optim.Adam
takes over and says so, and the state dicts of the two load into each other."""

from __future__ import annotations

import pytest
import torch

from bvae_tui.engine.config import TrainConfig
from bvae_tui.engine.train import adam


@pytest.fixture
def unchecked(monkeypatch):
    """Forget this process's check of the op, so the test's version of it is checked."""
    monkeypatch.setattr(adam, "_probed", {})


def break_op(monkeypatch, how: str) -> None:
    """Make ``torch._fused_adam_`` look like a torch release that changed it."""
    if how == "missing":
        monkeypatch.delattr(torch, "_fused_adam_")
    elif how == "signature":
        def renamed_keywords(*args, **kwargs):
            raise TypeError("_fused_adam_() got an unexpected keyword argument 'beta1'")

        monkeypatch.setattr(torch, "_fused_adam_", renamed_keywords)
    else:  # accepts the call but computes something else (here: nothing)
        monkeypatch.setattr(torch, "_fused_adam_", lambda *args, **kwargs: None)


def test_the_op_passes_its_check_on_this_torch(unchecked, capsys):
    assert adam.fused_adam_problem("cpu") is None
    params = [torch.nn.Parameter(torch.ones(3))]
    assert isinstance(adam.make_optimizer(params, TrainConfig(), "cpu"), adam.Adam)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("how", ["missing", "signature", "arithmetic"])
def test_a_changed_op_falls_back_to_torch_adam_and_says_so(unchecked, monkeypatch, capsys, how):
    break_op(monkeypatch, how)
    params = [torch.nn.Parameter(torch.ones(3))]
    opt = adam.make_optimizer(params, TrainConfig(lr=0.1), "cpu")
    assert isinstance(opt, torch.optim.Adam)
    err = capsys.readouterr().err
    assert err.startswith("warning:") and "torch._fused_adam_" in err
    assert "torch.optim.Adam" in err and len(err.strip().splitlines()) == 1
    # The fallback trains: one step moves every parameter against its gradient.
    params[0].grad = torch.tensor([1.0, -1.0, 2.0])
    opt.step()
    assert params[0].detach().tolist() == pytest.approx([0.9, 1.1, 0.9], rel=1e-4)
    adam.make_optimizer(params, TrainConfig(), "cpu")  # checked once per process
    assert capsys.readouterr().err == ""


def test_state_dicts_load_both_ways_and_keep_each_optimisers_kernel():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    ours = adam.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):
        model(torch.randn(5, 4)).square().sum().backward()
        ours.step()
        ours.zero_grad()
    theirs = torch.optim.Adam(model.parameters(), lr=0.5)  # PyTorch's default kernel on CPU
    adam.load_optimizer_state(theirs, ours.state_dict())
    group = theirs.param_groups[0]
    assert group["lr"] == 1e-2 and not group["fused"]  # the writer's fused flag stays behind
    assert all(float(s["step"]) == 2 for s in theirs.state.values())
    back = adam.Adam(model.parameters(), lr=0.5)
    adam.load_optimizer_state(back, theirs.state_dict())
    assert back.param_groups[0]["fused"] is True and back.param_groups[0]["lr"] == 1e-2
    for p in model.parameters():
        torch.testing.assert_close(back.state[p]["exp_avg_sq"], ours.state[p]["exp_avg_sq"])
