"""Datasets for bvae-tui: registry, procedural dSprites, downloads and the prepared cache.

Headless: nothing here imports textual, rich or typer. The API the engine uses:

* ``datasets.prepare.prepare(name, data_dir=None, progress=None, force=False)`` -> Dataset
* ``datasets.loader.open_dataset(name, data_dir=None, prepare_missing=True)`` -> Dataset
* ``datasets.loader.dataset_status(name, data_dir=None)`` -> dict (cheap: meta.json, headers)
* ``datasets.loader.check_available(name, data_dir=None)`` -> None, or the DataError to expect
* ``datasets.tensors.DeviceImages(dataset, device)``: the whole set as one uint8 tensor
* ``datasets.download.download_dataset(name, data_dir=None, progress=None, url=None)``
* ``datasets.npz.export_npz(dataset, path)``: the original dSprites file format

``progress(stage, done, total)`` stages: generate, import, decode, download, verify, export, and
``rebuild`` (0, None) once when a changed ``folder:PATH`` cache is rebuilt.
"""

# Marker checked by `engine` at import: a top-level package called `datasets` shares its name with
# Hugging Face's library, and if that one shadows ours we want a clear message, not an odd failure.
IS_BVAE_DATASETS = True
