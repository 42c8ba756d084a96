"""The loss terms of beta-TCVAE, FactorVAE and DIP-VAE against values worked out by hand (plain
Python arithmetic from the papers' formulas) on tiny tensors, and the estimators' edge cases."""

from __future__ import annotations

import math

import pytest
import torch

from bvae_tui.engine.config import TrainConfig
from bvae_tui.engine.errors import RunError
from bvae_tui.engine.objective_info import OBJECTIVE_INFO
from bvae_tui.engine.runs.records import MetricsRow
from bvae_tui.engine.train.objectives import (
    OBJECTIVE_CLASSES,
    ModelOutput,
    build_objective,
    compute_loss,
    recon_loss,
)
from bvae_tui.engine.train.objectives.dip import covariance_of_means, covariance_penalties
from bvae_tui.engine.train.objectives.factor import Discriminator, permute_dims, tc_estimate
from bvae_tui.engine.train.objectives.tcvae import kl_decomposition, log_importance_weights

pytestmark = pytest.mark.usefixtures("one_thread")


def _log_normal(z: float, mu: float, logvar: float) -> float:
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu) ** 2 / math.exp(logvar))


def _by_hand(z, mu, logvar, w) -> tuple[float, float, float]:
    """MI, TC and dimension-wise KL with weights w[i][k], by the definitions, in floats."""
    b, dims = len(z), len(z[0])
    mi = tc = dw = 0.0
    for i in range(b):
        cond = [[_log_normal(z[i][j], mu[k][j], logvar[k][j]) for j in range(dims)]
                for k in range(b)]
        log_qz_x = sum(cond[i])
        log_qz = math.log(sum(w[i][k] * math.exp(sum(cond[k])) for k in range(b)))
        log_dims = sum(math.log(sum(w[i][k] * math.exp(cond[k][j]) for k in range(b)))
                       for j in range(dims))
        log_pz = sum(_log_normal(v, 0.0, 0.0) for v in z[i])
        mi += (log_qz_x - log_qz) / b
        tc += (log_qz - log_dims) / b
        dw += (log_dims - log_pz) / b
    return mi, tc, dw


Z = [[0.3, -1.2], [1.1, 0.4], [-0.5, 0.9]]
MU = [[0.2, -1.0], [0.9, 0.1], [-0.4, 1.3]]
LOGVAR = [[-0.5, 0.2], [0.1, -1.0], [0.3, -0.2]]


# -- beta-TCVAE ---------------------------------------------------------------------------------

def test_stratified_weights_by_hand():
    # B = 3, N = 5, M = B - 1 = 2: itself 1/N, the next one (N - M)/(N M), the other 1/M
    w = log_importance_weights(3, 5, "mss").exp()
    expected = [[0.2, 0.3, 0.5], [0.5, 0.2, 0.3], [0.3, 0.5, 0.2]]
    torch.testing.assert_close(w, torch.tensor(expected))
    for b, n in ((2, 2), (2, 737_280), (7, 7), (64, 737_280), (64, 4_608)):
        rows = log_importance_weights(b, n, "mss").double().exp().sum(1)
        torch.testing.assert_close(rows, torch.ones(b, dtype=torch.float64), rtol=1e-6, atol=0)
    w = log_importance_weights(4, 10, "mws").exp()
    torch.testing.assert_close(w, torch.full((4, 4), 1 / 40))


def test_stratified_estimator_edge_cases():
    # A batch of 2: itself 1/N, the other one stands for the other N - 1 images.
    torch.testing.assert_close(log_importance_weights(2, 10).exp(),
                               torch.tensor([[0.1, 0.9], [0.9, 0.1]]))
    # A dataset of one image: q(z) is q(z|x) exactly, so MI and TC are 0.
    assert log_importance_weights(1, 1).tolist() == [[0.0]]
    z, mu, logvar = (torch.tensor([row]) for row in (Z[0], MU[0], LOGVAR[0]))
    mi, tc, dw = kl_decomposition(z, mu, logvar, log_importance_weights(1, 1))
    assert mi.item() == pytest.approx(0.0, abs=1e-6) and tc.item() == pytest.approx(0, abs=1e-6)
    log_ratio = sum(_log_normal(Z[0][j], MU[0][j], LOGVAR[0][j]) - _log_normal(Z[0][j], 0, 0)
                    for j in range(2))
    assert dw.item() == pytest.approx(log_ratio, rel=1e-5)
    with pytest.raises(ValueError, match="batch of at least 2"):
        log_importance_weights(1, 10)
    with pytest.raises(ValueError, match="at most the dataset size"):
        log_importance_weights(3, 2)
    with pytest.raises(ValueError, match="at least 1"):
        log_importance_weights(2, 0)
    assert log_importance_weights(1, 10, "mws").exp().item() == pytest.approx(0.1)


@pytest.mark.parametrize("estimator, n", [("mss", 5), ("mss", 3), ("mws", 5)])
def test_kl_decomposition_matches_the_definitions(estimator, n):
    log_w = log_importance_weights(3, n, estimator)
    got = kl_decomposition(torch.tensor(Z), torch.tensor(MU), torch.tensor(LOGVAR), log_w)
    want = _by_hand(Z, MU, LOGVAR, log_w.double().exp().tolist())
    for g, w in zip(got, want, strict=True):
        assert g.item() == pytest.approx(w, rel=1e-5, abs=1e-6)
    # The three add up to the sampled KL, log q(z|x) - log p(z), whatever the weights.
    sampled = sum(_log_normal(Z[i][j], MU[i][j], LOGVAR[i][j]) - _log_normal(Z[i][j], 0, 0)
                  for i in range(3) for j in range(2)) / 3
    assert sum(t.item() for t in got) == pytest.approx(sampled, rel=1e-5)


def test_one_latent_has_no_total_correlation_and_correlated_codes_have_more():
    z = torch.tensor([[0.5], [-0.3], [1.2]])
    _, tc, _ = kl_decomposition(z, z + 0.1, torch.zeros_like(z) - 1,
                                log_importance_weights(3, 100))
    assert tc.item() == pytest.approx(0.0, abs=1e-5)
    g = torch.Generator().manual_seed(0)
    base = torch.randn(256, 2, generator=g)
    logvar = torch.full((256, 2), math.log(0.01))
    copied = torch.stack((base[:, 0], base[:, 0]), 1)  # the second latent repeats the first
    w = log_importance_weights(256, 100_000)
    _, tc_independent, _ = kl_decomposition(base, base, logvar, w)
    _, tc_copied, _ = kl_decomposition(copied, copied, logvar, w)
    assert tc_copied.item() > tc_independent.item() + 1.0  # log(1/0.1)-ish apart, not 0.1


def _output(b=3, z_dim=2, seed=0) -> ModelOutput:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(b, 1, 64, 64, generator=g) > 0.5).float()
    logits = torch.randn(b, 1, 64, 64, generator=g)
    mu = torch.randn(b, z_dim, generator=g, requires_grad=True)
    logvar = (0.3 * torch.randn(b, z_dim, generator=g)).requires_grad_()
    z = mu + torch.randn(b, z_dim, generator=g) * (0.5 * logvar).exp()
    return ModelOutput(x, logits, mu, logvar, z)


def test_tcvae_loss_weighs_its_three_terms():
    cfg = TrainConfig(dataset="dsprites-mini", objective="tcvae", alpha=0.5, beta=3.0,
                      gamma_dw=2.0)
    out = _output()
    values = build_objective(cfg, "bernoulli", dataset_size=10).loss(out, 1)
    mi, tc, dw = kl_decomposition(out.z, out.mu, out.logvar, log_importance_weights(3, 10))
    recon = recon_loss(out.logits, out.x, "bernoulli")
    expected = recon + 0.5 * mi + 3.0 * tc + 2.0 * dw
    assert values["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert values["tc"].item() == pytest.approx(tc.item(), rel=1e-6)
    assert values["kl"].item() == pytest.approx(values["kl_per_latent"].sum().item())
    values["loss"].backward()
    assert out.mu.grad is not None and out.logvar.grad is not None
    with pytest.raises(ValueError, match="dataset size"):
        build_objective(cfg, "bernoulli")
    with pytest.raises(ValueError, match="needs the sample z"):
        compute_loss(cfg, out.logits, out.x, out.mu, out.logvar, 1, "bernoulli", dataset_size=9)


# -- FactorVAE ----------------------------------------------------------------------------------

def test_discriminator_shape_and_permuted_codes():
    disc = Discriminator(10)
    linears = [m for m in disc.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(10, 1000)] + [
        (1000, 1000)] * 5 + [(1000, 2)]
    slopes = [m.negative_slope for m in disc.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert slopes == [0.2] * 6
    torch.manual_seed(0)
    z = torch.arange(40.0).reshape(20, 2)
    shuffled = permute_dims(z)
    for j in range(2):  # each column keeps its values, in its own new order
        assert sorted(shuffled[:, j].tolist()) == z[:, j].tolist()
    assert not torch.equal(shuffled, z)
    assert not torch.equal(shuffled[:, 0].argsort(), shuffled[:, 1].argsort())
    assert tc_estimate(torch.tensor([[2.0, 0.0], [1.0, 1.0]])).item() == pytest.approx(1.0)


def _factor(gamma_tc=7.0):
    cfg = TrainConfig(dataset="dsprites-mini", objective="factor", z_dim=2, gamma_tc=gamma_tc,
                      disc_lr=1e-3)
    objective = build_objective(cfg, "bernoulli")
    last = objective.discriminator.net[-1]
    with torch.no_grad():  # a discriminator the test sets: logits (1.5, -0.5) for every code
        last.weight.zero_()
        last.bias.copy_(torch.tensor([1.5, -0.5]))
    return objective


def test_factor_loss_and_discriminator_update():
    objective = _factor()
    out = _output(b=4)
    values = objective.loss(out, 1)
    recon, kl = recon_loss(out.logits, out.x, "bernoulli"), values["kl_per_latent"].sum()
    assert values["tc"].item() == pytest.approx(2.0)
    assert values["loss"].item() == pytest.approx((recon + kl + 7.0 * 2.0).item(), rel=1e-6)
    values["loss"].backward()
    assert all(p.grad is None for p in objective.discriminator.parameters())  # VAE's step only
    group = objective.optimizer.param_groups[0]
    assert tuple(group["betas"]) == (0.5, 0.9) and group["lr"] == 1e-3
    before = [p.detach().clone() for p in objective.discriminator.parameters()]
    terms = objective.update(out, 1)
    # It called every code real: right on the first half, wrong on the permuted half.
    assert terms["disc_acc"].item() == pytest.approx(0.5)
    after = list(objective.discriminator.parameters())
    assert not torch.equal(before[-1], after[-1])


def test_factor_state_round_trips_and_a_missing_one_is_refused():
    objective = _factor()
    objective.update(_output(b=4), 1)
    state = objective.state_dict()
    fresh = build_objective(objective.cfg, "bernoulli")
    fresh.load_state_dict(state)
    for a, b in zip(fresh.discriminator.parameters(), objective.discriminator.parameters(),
                    strict=True):
        assert torch.equal(a, b)
    assert fresh.optimizer.state_dict()["state"].keys() == state["optimizer"]["state"].keys()
    with pytest.raises(RunError, match="no discriminator"):
        fresh.load_state_dict({})
    out = _output()
    with pytest.raises(ValueError, match="discriminator"):
        compute_loss(objective.cfg, out.logits, out.x, out.mu, out.logvar, 1, "bernoulli")


# -- DIP-VAE ------------------------------------------------------------------------------------

def test_dip_penalties_by_hand():
    mu = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    cov = covariance_of_means(mu)  # centred: (-1, -2), (1, 2); divided by B = 2
    torch.testing.assert_close(cov, torch.tensor([[1.0, 2.0], [2.0, 4.0]]))
    od, d = covariance_penalties(cov)
    assert (od.item(), d.item()) == (8.0, 9.0)  # 2 * 2^2; (1-1)^2 + (4-1)^2
    logvar = torch.log(torch.tensor([[0.25, 1.5], [0.75, 0.5]]))  # mean variances 0.5, 1.0
    x, logits = torch.ones(2, 1, 64, 64), torch.zeros(2, 1, 64, 64)
    out = ModelOutput(x, logits, mu, logvar, mu)
    recon = recon_loss(logits, x, "bernoulli").item()
    for objective, lambda_d, d_want in (("dip-i", 30.0, 9.0), ("dip-ii", 3.0, 0.25 + 16.0)):
        cfg = TrainConfig(dataset="dsprites-mini", objective=objective, z_dim=2, lambda_od=3.0)
        assert cfg.dip_lambda_d == lambda_d
        values = build_objective(cfg).loss(out, 1)
        assert values["dip_od"].item() == pytest.approx(8.0)
        assert values["dip_d"].item() == pytest.approx(d_want)
        kl = values["kl_per_latent"].sum().item()
        want = recon + kl + 3.0 * 8.0 + lambda_d * d_want
        assert values["loss"].item() == pytest.approx(want, rel=1e-6)


def test_dip_on_a_batch_of_one_is_finite():
    cfg = TrainConfig(dataset="dsprites-mini", objective="dip-ii", z_dim=3)
    values = build_objective(cfg).loss(_output(b=1, z_dim=3), 1)
    assert values["dip_od"].item() == 0.0 and math.isfinite(values["dip_d"].item())


# -- every objective ----------------------------------------------------------------------------

def test_every_objective_has_a_class_and_logs_its_declared_terms():
    assert set(OBJECTIVE_CLASSES) == set(OBJECTIVE_INFO)
    row_fields = set(MetricsRow().to_dict())
    for name, info in OBJECTIVE_INFO.items():
        cfg = TrainConfig(dataset="dsprites-mini", objective=name, z_dim=2, batch_size=4)
        objective = build_objective(cfg, dataset_size=100)
        assert objective.terms == info.terms and set(info.terms) <= row_fields
        out = _output(b=4)
        values = objective.loss(out, 1) | objective.update(out, 1)
        assert set(info.terms) <= set(values)
        assert all(values[t].dim() == 0 and math.isfinite(values[t].item()) for t in info.terms)
