"""The widgets of bvae-tui: one module each."""
