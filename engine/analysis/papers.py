"""Published figures that our scores are shown beside (REFERENCE.md). No heavy imports."""

# Higgins et al. 2017, BetaVAE metric on dSprites (REFERENCE.md), for side-by-side tables.
PAPER_BETAVAE = {
    "ground truth": 1.0, "raw pixels": 0.4575, "PCA": 0.849, "ICA": 0.4203, "DC-IGN": 0.993,
    "InfoGAN": 0.735, "untrained VAE": 0.4414, "VAE": 0.6158, "beta-VAE": 0.9923,
}
