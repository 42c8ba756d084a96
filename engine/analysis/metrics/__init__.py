"""Disentanglement metrics: BetaVAE (Higgins 2017), FactorVAE (Kim & Mnih 2018), MIG (Chen 2018),
DCI (Eastwood & Williams 2018), SAP (Kumar et al. 2018), modularity and explicitness (Ridgeway &
Mozer 2018); and UDR (Duan et al. 2020), which compares runs instead of reading factors.

Each metric follows google-research/disentanglement_lib (see REFERENCE.md), so scores are
comparable with published ones: the same sample counts, the same draw order from a seeded
``np.random.RandomState`` (one fresh state per metric), only the factors with more than one value,
and the same scikit-learn models (``LogisticRegression`` for BetaVAE and explicitness,
``GradientBoostingClassifier`` for DCI, ``LinearSVC`` for SAP, ``Lasso`` for UDR); discrete
mutual information (MIG, modularity) is computed in :mod:`.information`, equal to
``mutual_info_score`` to rounding. Two defaults take a faster road to the same definitions, so a
whole evaluation fits in minutes on a CPU: BetaVAE and FactorVAE draw their batches from a pool of
131,072 images (``ground_truth.Pool``), and DCI grows its trees on histograms (``dci.py``);
``EXACT_PARAMS`` (``bvae eval --exact``) restores disentanglement_lib's own procedure.

Every metric works in two steps, so that the images are encoded once for all of them:

1. ``plan_*`` draws the factor samples and turns them into dataset indices (no images touched);
2. ``score_*`` reads representations for those indices from a :class:`Table`.

Where things are:

- ``tables.py``: :class:`Table` and its kinds (precomputed codes, computed per lookup);
- ``ground_truth.py``: :class:`GroundTruth`, factor sampling as disentanglement_lib does it;
- ``factor_codes.py``: the training and test points DCI, SAP, modularity and explicitness share;
  ``information.py``: histogram discretisation and the latent x factor MI matrix;
- one module per metric (``betavae.py``, ``factorvae.py``, ``mig.py``, ``dci.py``, ``sap.py``,
  ``modularity.py``, ``explicitness.py``): a NEW METRIC is a new module like these, listed in
  ``registry.py``;
- ``registry.py``: the metric list, sample counts, :func:`evaluate_representation`;
- ``udr.py``: UDR's similarity matrices and scores for a group of representations. It is not in
  the registry: it scores several runs against each other, without factors
  (:mod:`bvae_tui.engine.analysis.udr_eval` runs it).

Only numpy is imported with the package; scikit-learn inside the scoring functions.
"""

from bvae_tui.engine.analysis.metrics.betavae import BetaVAEPlan, plan_beta_vae, score_beta_vae
from bvae_tui.engine.analysis.metrics.factorvae import (
    FactorVAEPlan,
    plan_factor_vae,
    score_factor_vae,
)
from bvae_tui.engine.analysis.metrics.ground_truth import GroundTruth
from bvae_tui.engine.analysis.metrics.mig import MIGPlan, plan_mig, score_mig
from bvae_tui.engine.analysis.metrics.registry import (
    DEFAULT_PARAMS,
    EXACT_PARAMS,
    FAST_PARAMS,
    METRICS,
    REGISTRY,
    TITLES,
    Metric,
    evaluate_representation,
    parse_metrics,
    resolve_params,
)
from bvae_tui.engine.analysis.metrics.tables import (
    CodeTable,
    FunctionTable,
    Table,
    permuted,
    rescaled,
)

__all__ = [
    "DEFAULT_PARAMS", "EXACT_PARAMS", "FAST_PARAMS", "METRICS", "REGISTRY", "TITLES", "BetaVAEPlan",
    "CodeTable",
    "FactorVAEPlan", "FunctionTable", "GroundTruth", "MIGPlan", "Metric", "Table",
    "evaluate_representation", "parse_metrics", "permuted", "plan_beta_vae", "plan_factor_vae",
    "plan_mig", "rescaled", "resolve_params", "score_beta_vae", "score_factor_vae", "score_mig",
]
