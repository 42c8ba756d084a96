from bvae_tui.cli.main import app  # noqa: F401
