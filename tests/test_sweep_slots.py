"""Where members go: the devices of a local sweep (with a stand-in NVML), the host's slot table
and the GPU-memory rule for packing more than one member onto a GPU."""

from __future__ import annotations

import time

import pytest

import bvae_tui.engine.runs.devices
from bvae_tui.engine.errors import ConfigError, DeviceError
from bvae_tui.engine.runs.process import process_start_time
from bvae_tui.engine.runs.sweeps.local import placement
from bvae_tui.engine.runs.sweeps.records import SlotEntry
from bvae_tui.engine.runs.sweeps.slots import Slots, SlotTable, memory_fits, train_device
from bvae_tui.engine.runs.sweeps.spec import ExecutorSettings
from tests.test_tui_new_run import GIB, FakeNvml, _no_nvml
from tests.tui_helpers import sleeper


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", FakeNvml)


def test_placement_on_gpus(two_gpus):
    assert placement(ExecutorSettings(), None)[:2] == (["cuda:0", "cuda:1"], 1)
    assert placement(ExecutorSettings(gpus=[1], per_gpu=3), "auto")[:2] == (["cuda:1"], 3)
    assert placement(ExecutorSettings(), "cuda:0")[:2] == (["cuda:0"], 1)
    assert placement(ExecutorSettings(slots=2), "cpu")[:2] == (["cpu"], 2)
    with pytest.raises(DeviceError, match="there is no GPU 5"):
        placement(ExecutorSettings(gpus=[5]), None)
    with pytest.raises(ConfigError, match="--slots is for the CPU"):
        placement(ExecutorSettings(slots=2), None)
    with pytest.raises(ConfigError, match="either --gpus or --device cpu"):
        placement(ExecutorSettings(gpus=[0]), "cpu")


def test_placement_without_gpus_is_the_cpu(monkeypatch):
    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", _no_nvml)
    devices, per, note = placement(ExecutorSettings(slots=2), None)
    assert (devices, per) == (["cpu"], 2) and "no GPU found" in note
    with pytest.raises(ConfigError, match="on the CPU use --slots"):
        placement(ExecutorSettings(per_gpu=2), None)


def test_pick_spreads_then_packs():
    slots = Slots([SlotEntry(device="cuda:0", run="/r/a", pid=1)])
    assert slots.pick(["cuda:0", "cuda:1"], 2) == "cuda:1"  # the emptiest first
    slots.add(SlotEntry(device="cuda:1", run="/r/b", pid=2))
    assert slots.pick(["cuda:0", "cuda:1"], 2) == "cuda:0"  # then in the sweep's order
    assert slots.pick(["cuda:0", "cuda:1"], 1) is None  # full
    assert slots.pick(["cuda:0", "cuda:1"], 2, {"cuda:0": False}) == "cuda:1"


def test_memory_rule():
    devices = ["cuda:0", "cuda:1", "cpu"]
    free = {"cuda:0": 30 * GIB, "cuda:1": 8 * GIB}
    # Before any member measured its peak: only an empty GPU takes one (to measure it there).
    assert memory_fits(devices, None, {"cuda:0": 1, "cuda:1": 0}, free) == \
        {"cuda:0": False, "cuda:1": True, "cpu": True}
    # Then a start needs the peak plus a margin free.
    assert memory_fits(devices, 10 * GIB, {"cuda:0": 1, "cuda:1": 0}, free) == \
        {"cuda:0": True, "cuda:1": False, "cpu": True}
    assert train_device("fake:3") == "cpu" and train_device("cuda:1") == "cuda:1"


def test_slot_table_heals_and_is_per_host(tmp_path):
    live = sleeper()
    try:
        table = SlotTable(tmp_path, host="box-a")
        with table.claim() as slots:
            slots.add(SlotEntry(device="cuda:0", run="/r/live", pid=live.pid,
                                pid_start=process_start_time(live.pid), since=time.time()))
            slots.add(SlotEntry(device="cuda:0", run="/r/dead", pid=999_999, since=time.time()))
            slots.add(SlotEntry(device="cuda:1", run="/r/starting", pid=None, since=time.time()))
        assert table.path == tmp_path / "sweeps" / ".slots" / "box-a.json"
        live_runs = {e.run for e in table.entries()}
        assert live_runs == {"/r/live", "/r/starting"}  # the dead worker's slot is free again
        assert SlotTable(tmp_path, host="box-b").entries() == []
    finally:
        live.kill()
