"""Datasets for bvae-tui: registry, procedural dSprites, downloads and the prepared cache.

Headless: nothing here imports textual, rich or typer.
"""

# Marker checked by `engine` at import: a top-level package called `datasets` shares its name with
# Hugging Face's library, and if that one shadows ours we want a clear message, not an odd failure.
IS_BVAE_DATASETS = True
