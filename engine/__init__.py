"""The bvae-tui engine: config, models, training, run store, devices, visualisation, metrics.

Headless: nothing here imports textual, rich or typer.
"""

import datasets as _datasets

if not getattr(_datasets, "IS_BVAE_DATASETS", False):  # pragma: no cover - environment check
    raise ImportError(
        f"'import datasets' found {getattr(_datasets, '__file__', '?')}, not bvae-tui's datasets "
        "package; install bvae-tui into its own virtual environment (see README)"
    )
