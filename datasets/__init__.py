"""Datasets for bvae-tui: registry, procedural dSprites, downloads and the prepared cache.

Headless: nothing here imports textual, rich or typer. The API the engine uses:

* ``datasets.prepare.prepare(name, data_dir=None, progress=None, force=False)`` -> Dataset
* ``datasets.loader.open_dataset(name, data_dir=None, prepare_missing=True)`` -> Dataset
* ``datasets.loader.dataset_status(name, data_dir=None)`` -> dict (cheap: reads meta.json)
* ``datasets.tensors.DeviceImages(dataset, device)``: the whole set as one uint8 tensor
* ``datasets.download.download_dataset(name, data_dir=None, progress=None, url=None)``
* ``datasets.npz.export_npz(dataset, path)``: the original dSprites file format

``progress(stage, done, total)`` stages: generate, import, decode, download, verify, export.
"""

# Marker checked by `engine` at import: a top-level package called `datasets` shares its name with
# Hugging Face's library, and if that one shadows ours we want a clear message, not an odd failure.
IS_BVAE_DATASETS = True
