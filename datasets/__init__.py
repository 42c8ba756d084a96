"""Datasets for bvae-tui (installed as ``bvae_tui.datasets``): registry, procedural dSprites,
downloads and the prepared cache.

Headless: nothing here imports textual, rich or typer. The API the engine uses (module names
relative to this package):

* ``prepare.prepare(name, data_dir=None, progress=None, force=False)`` -> Dataset
* ``prepare.open_dataset(name, data_dir=None, prepare_missing=True)`` -> Dataset
* ``loader.dataset_status(name, data_dir=None)`` -> dict (cheap: meta.json, headers)
* ``loader.check_available(name, data_dir=None)`` -> None, or the DataError to expect
* ``tensors.DeviceImages(dataset, device)``: the whole set as one uint8 tensor
* ``download.download_dataset(name, data_dir=None, progress=None, url=None)``
* ``npz.export_npz(dataset, path)``: the original dSprites file format

``progress(stage, done, total)`` stages: generate, import, decode, download, verify, export, and
``rebuild`` (0, None) once when a changed ``folder:PATH`` cache is rebuilt.
"""
