"""Bad input of issue 21 where the other probe tests do not reach: the TUI form refuses
`--probe-every` on a dataset without factors and below the log interval (marked on the field),
a real worker whose probe fails writes one line to worker.log and trains on, and the faces
that read probes.jsonl (compare, export) skip a torn last line."""

from __future__ import annotations

import csv
import textwrap

import pytest

import bvae_tui.engine.runs.devices
from bvae_tui.engine.analysis.compare_runs import load_runs
from bvae_tui.engine.runs.records import ProbeRow
from bvae_tui.engine.runs.store import Run
from bvae_tui.tui.app import BvaeApp
from bvae_tui.tui.screens.new_run import NewRunScreen
from tests.compare_helpers import make_run
from tests.test_export_data import bvae as bvae_cli
from tests.test_worker import TINY, bvae
from tests.test_worker import wait_for as wait_until
from tests.tui_helpers import wait_for


def _no_nvml():
    raise ImportError("No module named 'pynvml'")


async def test_form_marks_bad_probe_intervals_on_the_field(runs_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(bvae_tui.engine.runs.devices, "_nvml", _no_nvml)
    app = BvaeApp(runs_dir, tmp_path / "data")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, NewRunScreen), 5, "the form")
        form = app.screen
        form.set_field("dataset", "celeba")
        form.set_field("probe_every", "100")
        await pilot.pause()
        assert not form.revalidate()
        assert set(form.errors) == {"probe_every"}
        message = form.errors["probe_every"]
        assert "needs a dataset with ground-truth factors" in message
        assert "dsprites, dsprites-mini, shapes3d" in message  # which datasets have them
        assert form.query_one("#err-probe_every").display

        form.set_field("dataset", "dsprites-mini")
        form.set_field("log_every", "100")
        form.set_field("probe_every", "50")
        await pilot.pause()
        assert not form.revalidate()
        assert "must be at least --log-every (100)" in form.errors["probe_every"]
        await pilot.press("ctrl+r")  # refused: nothing is created
        await pilot.pause()
        assert isinstance(app.screen, NewRunScreen) and not any(runs_dir.iterdir())

        form.set_field("probe_every", "200")
        await pilot.pause()
        assert form.revalidate(), form.errors
        assert "--probe-every 200" in str(form.query_one("#form-command").render())


# The worker process loads this at startup (PYTHONPATH): the probe module, once imported,
# gets a probe that always fails, as a broken sample or an encoder out of memory would.
_BREAK_PROBES = textwrap.dedent('''
    import importlib.abc
    import importlib.util
    import sys

    TARGET = "bvae_tui.engine.train.probes"


    class BreakProbes(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != TARGET:
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            run_module = spec.loader.exec_module

            def exec_module(module):
                run_module(module)

                def probe(self, model, iteration):
                    raise RuntimeError("sample unreadable on purpose")

                module.Prober.probe = probe

            spec.loader.exec_module = exec_module
            return spec


    sys.meta_path.insert(0, BreakProbes())
''')


def test_a_real_workers_failing_probe_is_one_line_of_its_log(env, runs_dir, tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_BREAK_PROBES)
    env = {**env, "PYTHONPATH": str(hook)}
    out = bvae(env, "train", *TINY, "--iterations", "60", "--log-every", "10",
               "--probe-every", "10", "--detach")
    assert out.returncode == 0, out.stderr
    run = Run(runs_dir / out.stdout.strip())
    wait_until(lambda: run.status().state in ("finished", "failed"), what="the run to end")
    log = run.log_path.read_text()
    assert run.status().state == "finished", log
    lines = [line for line in log.splitlines() if "probe failed" in line]
    assert len(lines) == 1, log  # once, not at each of the six probes
    assert "iteration 10" in lines[0] and "sample unreadable on purpose" in lines[0]
    assert run.probes() == []
    assert [r.iter for r in run.metrics()] == [10, 20, 30, 40, 50, 60]  # training went on


@pytest.fixture
def torn(runs_dir):
    run = make_run(runs_dir, "torn")
    whole = ProbeRow(iter=100, mig=0.2, factors=["shape"], mi=[[0.4], [0.1]])
    run.probes_path.write_text(whole.to_line() + '{"iter": 200, "mig": 0.9, "factors": ["sh')
    return run


def test_compare_and_export_skip_a_torn_last_probe_line(torn, tmp_path):
    (data,) = load_runs([torn])
    assert data.probe_iters.tolist() == [100] and data.probe_curves["mig"].tolist() == [0.2]
    target = tmp_path / "rows.csv"
    result = bvae_cli("export", "csv", torn.id, "-o", str(target))
    assert result.exit_code == 0, result.output
    with open(target, newline="") as fh:
        lines = list(csv.DictReader(fh))
    assert [(line["iter"], line["probe_mig"]) for line in lines if line["probe_mig"]] == [
        ("100", "0.2")]
