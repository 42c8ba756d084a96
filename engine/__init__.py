"""The bvae-tui engine (installed as ``bvae_tui.engine``); headless: no textual, rich or typer.

- ``config``: the one training-config schema the CLI, the TUI form and the worker share.
- ``train/``: networks, objectives, the training step and loop, checkpoints, fast paths.
- ``runs/``: the run directory store, launching and stopping workers, the worker, devices.
- ``analysis/``: disentanglement metrics, evaluation, baselines, traversals and exports.
- ``bench/``: ``bvae bench``, the project's training path against the textbook loop.
"""
