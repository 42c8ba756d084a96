"""Analysis of trained runs: disentanglement metrics, evaluation, baselines, traversals, exports."""
