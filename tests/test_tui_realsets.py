"""The new-run form's dataset list shows SmallNORB, Cars3D and MPI3D and what launching does."""

from __future__ import annotations

import bvae_tui.engine.runs.devices
from bvae_tui.tui.app import BvaeApp
from tests.test_datasets_realsets import _prepare_small
from tests.test_tui_new_run import _no_nvml, _open_form


async def test_dataset_list_has_the_real_sets(runs_dir, tmp_path, monkeypatch):
    from textual.widgets import Select

    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", _no_nvml)
    data = tmp_path / "data"
    data.mkdir()
    _prepare_small("cars3d", data, monkeypatch)
    app = BvaeApp(runs_dir, data)
    async with app.run_test(size=(100, 30)) as pilot:
        form = await _open_form(app, pilot)
        form.inputs["dataset"].focus()
        await pilot.pause()
        select = form.inputs["dataset"].query_one(Select)
        labels = {value: str(label) for label, value in select._options}
        assert "prepared (files)" in labels["cars3d"]
        # SmallNORB's six files have published sizes (263 MB together); MPI3D's have none.
        assert "bvae data download smallnorb, 263 MB first" in labels["smallnorb"]
        for name in ("mpi3d-toy", "mpi3d-realistic", "mpi3d-real"):
            assert f"bvae data download {name} first" in labels[name]
