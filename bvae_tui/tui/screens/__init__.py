"""The screens of bvae-tui: one module each."""
