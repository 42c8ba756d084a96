"""Training: networks, objectives, the training step and loop, checkpoints, fast paths."""
