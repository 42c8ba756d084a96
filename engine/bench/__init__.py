"""`bvae bench`: the project's training path against the textbook PyTorch loop."""
