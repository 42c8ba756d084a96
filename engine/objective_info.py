"""The training objectives as the faces know them: names, papers, formulas, labels, the terms
each logs and the hyperparameter grids of Locatello et al. 2019. No torch here: the losses
themselves are in :mod:`bvae_tui.engine.train.objectives`, one module per objective, and a test
checks that the two agree."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ObjectiveInfo:
    """What the faces need to know about an objective, without importing torch (the losses are
    in :mod:`bvae_tui.engine.train.objectives`, one module each)."""

    name: str
    title: str
    paper: str
    loss: str  # the formula, as the help shows it
    label: tuple[tuple[str, str, str], ...]  # (field, symbol in labels, letter in run names)
    terms: tuple[str, ...] = ()  # its own metrics-row fields, besides loss, recon and KL


OBJECTIVE_INFO: dict[str, ObjectiveInfo] = {info.name: info for info in (
    ObjectiveInfo("H", "beta-VAE", "Higgins et al. 2017", "recon + beta KL",
                  (("beta", "β", "b"),)),
    ObjectiveInfo("B", "beta-VAE with controlled capacity", "Burgess et al. 2018",
                  "recon + gamma |KL - C|", (("gamma", "γ", "g"), ("c_max", "C", "c"))),
    ObjectiveInfo("tcvae", "beta-TCVAE", "Chen et al. 2018",
                  "recon + alpha MI + beta TC + gamma_dw dim-KL", (("beta", "β", "b"),),
                  ("mi", "tc", "dw_kl")),
    ObjectiveInfo("factor", "FactorVAE", "Kim & Mnih 2018", "recon + KL + gamma_tc TC",
                  (("gamma_tc", "γ", "g"),), ("tc", "disc_acc")),
    ObjectiveInfo("dip-i", "DIP-VAE-I", "Kumar et al. 2018",
                  "recon + KL + lambda_od offdiag + lambda_d diag (of Cov[mu])",
                  (("lambda_od", "λ", "od"),), ("dip_od", "dip_d")),
    ObjectiveInfo("dip-ii", "DIP-VAE-II", "Kumar et al. 2018",
                  "recon + KL + lambda_od offdiag + lambda_d diag (of Cov[z])",
                  (("lambda_od", "λ", "od"),), ("dip_od", "dip_d")),
)}
OBJECTIVES = tuple(OBJECTIVE_INFO)
TERM_FIELDS = tuple(dict.fromkeys(t for info in OBJECTIVE_INFO.values() for t in info.terms))
DIP = ("dip-i", "dip-ii")
TC_ESTIMATORS = ("mss", "mws")

# The hyperparameter Locatello et al. 2019 swept for each of their objectives, and its values
# (REFERENCE.md); a sweep over one of these presets varies that field over those values.
STUDY_GRIDS: dict[str, tuple[str, tuple[float, ...]]] = {
    "dsprites-H": ("beta", (1.0, 2.0, 4.0, 6.0, 8.0, 16.0)),
    "dsprites-tcvae": ("beta", (1.0, 2.0, 4.0, 6.0, 8.0, 10.0)),
    "dsprites-factor": ("gamma_tc", (10.0, 20.0, 30.0, 40.0, 50.0, 100.0)),
    "dsprites-dip-i": ("lambda_od", (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)),
    "dsprites-dip-ii": ("lambda_od", (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)),
}


def objective_label(config: Mapping[str, Any], *, ascii: bool = False) -> str:
    """A run's objective in a few characters, from a config dict: ``H β4``, ``B γ100 C20``,
    ``factor γ40``; with ``ascii`` the run-name form ``H-b4``, ``B-g100-c20``, ``factor-g40``."""
    name = config.get("objective")
    info = OBJECTIVE_INFO.get(name) if isinstance(name, str) else None
    if info is None:
        return str(name) if name else "?"
    parts = [info.name]
    for key, symbol, letter in info.label:
        value = config.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parts.append(f"{letter if ascii else symbol}{value:g}")
    return "-".join(parts) if ascii else " ".join(parts)

