"""Small metric settings for tests that score a tiny model on a tiny data set: every factor
metric's parameters from a few sizes, so that each test file says only what it scales."""

from __future__ import annotations


def tiny_metric_params(batch: int, train: int, test: int, pool: int, bins: int, *,
                       dci: tuple[int, int] | None = None,
                       variance: int | None = None) -> dict[str, dict[str, int | float]]:
    """``train``/``test`` points for the classifier metrics, ``pool`` points (and ``bins``) for
    the MI ones and FactorVAE's variance estimate; ``dci`` (train, test) and ``variance``
    override those two where a test needs them apart."""
    dci_train, dci_test = dci or (train, test)
    return {
        "betavae": {"batch_size": batch, "num_train": train, "num_eval": test},
        "factorvae": {"batch_size": batch, "num_train": train, "num_eval": test,
                      "num_variance_estimate": variance or pool, "prune_threshold": 0.05},
        "mig": {"num_train": pool, "num_bins": bins},
        "dci": {"num_train": dci_train, "num_test": dci_test},
        "sap": {"num_train": train, "num_test": test},
        "modularity": {"num_train": pool, "num_bins": bins},
        "explicitness": {"num_train": train, "num_test": test},
    }
