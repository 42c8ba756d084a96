"""`bvae bench --json --quick` measures every figure against the baseline and documents its keys.

Only the machinery and the record's shape are checked: timings belong in benchmarks/, not here.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess

import pytest

from bvae_tui.engine.bench import flops, report
from bvae_tui.engine.train import precision
from tests.conftest import ROOT, bvae_command


@pytest.fixture(scope="module")
def quick_record(mini_data_dir) -> dict:
    env = dict(os.environ, BVAE_DATA_DIR=str(mini_data_dir))
    proc = subprocess.run([*bvae_command(), "bench", "--json", "--quick", "--device", "cpu"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_quick_bench_emits_the_documented_keys(quick_record):
    record = quick_record
    assert set(report.RECORD_KEYS) <= set(record)
    assert record["schema"] == report.SCHEMA
    assert record["device"] == "cpu" and record["device_name"]
    assert record["quick"] is True and record["dataset"] == "dsprites-mini"
    assert record["threads"] >= 1 and record["torch"]
    keys = {fig["key"] for fig in record["figures"]}
    # bf16 figures beside the float32 ones where the CPU has bf16 instructions
    bf16 = {"train.H.b8.bf16", "train.B.b8.bf16"} if precision.cpu_bf16_flag() else set()
    assert keys == {"train.H.b8", "train.B.b8", "draw.b8", "eval.b64", "first_step",
                    "peak_rss"} | bf16
    # --amp auto is float32 in the test suite (tests/conftest.py), bvae train used it
    assert record["amp_auto"]["amp"] == "auto" and record["amp_auto"]["used"] == "off"
    for fig in record["figures"]:
        assert set(fig) == set(report.FIGURE_KEYS)
        assert fig["amp"] == ("bf16" if fig["key"].endswith(".bf16") else "off"), fig
        assert fig["fast"] > 0 and fig["baseline"] > 0, fig
        expected = (fig["fast"] / fig["baseline"] if fig["higher_is_better"]
                    else fig["baseline"] / fig["fast"])
        assert fig["gain"] == pytest.approx(expected)
    by_key = {fig["key"]: fig for fig in record["figures"]}
    assert by_key["peak_rss"]["unit"] == "bytes" and not by_key["peak_rss"]["higher_is_better"]
    # A training process holds at least the interpreter and torch: tens of MB, not bytes.
    assert by_key["peak_rss"]["fast"] > 20e6
    assert by_key["first_step"]["unit"] == "s"
    assert record["targets"] == []  # the dSprites targets only apply to the full benchmark


def test_quick_bench_records_the_limit(quick_record):
    """Every training figure has its FLOPs, GFLOP/s and fraction of the measured peak."""
    record = quick_record
    assert record["cpu"]["model"] == precision.cpu_model()
    assert (precision.cpu_bf16_flag() in record["cpu"]["flags"]) == \
        bool(precision.cpu_bf16_flag())
    amps = ("off", "bf16") if precision.cpu_bf16_flag() else ("off",)
    peaks = {p["key"]: p for p in record["peaks"]}
    assert set(peaks) == {f"gemm.{a}" for a in amps} | {f"conv.{arch}.{a}" for arch in "HB"
                                                       for a in amps}
    for p in record["peaks"]:
        assert set(p) == set(report.PEAK_KEYS) and p["gflops"] > 0, p
        # the median of the rounds (kept rounded to 0.01 GFLOP/s)
        assert p["gflops"] == pytest.approx(statistics.median(p["rounds"]), abs=0.01)
    counted = {"H": flops.count_step_flops("H", batch=8), "B": flops.count_step_flops("B", batch=8)}
    for fig in record["figures"]:
        if not fig["key"].startswith("train."):
            assert all(fig[k] is None for k in report.LIMIT_KEYS), fig
            continue
        arch, amp = fig["key"].split(".")[1], fig["amp"]
        assert fig["flops_per_image"] == counted[arch]
        assert fig["gflops"] == pytest.approx(fig["flops_per_image"] * fig["fast"] / 1e9)
        assert fig["peak_gflops"] > 0 and fig["conv_peak_gflops"] == \
            peaks[f"conv.{arch}.{amp}"]["gflops"]
        assert fig["of_peak"] == pytest.approx(fig["gflops"] / fig["peak_gflops"])
        assert fig["of_conv_peak"] == pytest.approx(fig["gflops"] / fig["conv_peak_gflops"])
    # the dtype's GEMM peak is the median of the rounds measured beside all its figures
    for amp in amps:
        beside = [f["peak_gflops"] for f in record["figures"]
                  if f["key"].startswith("train.") and f["amp"] == amp]
        assert min(beside) <= peaks[f"gemm.{amp}"]["gflops"] <= max(beside)


def test_bench_table_shows_the_fraction_of_peak(quick_record, monkeypatch):
    """The text table of a real record: the "of peak" column and the peaks measured."""
    from typer.testing import CliRunner

    from bvae_tui.cli.main import app
    from bvae_tui.engine.bench import suite

    monkeypatch.setattr(suite, "run_bench", lambda *a, **k: quick_record)
    monkeypatch.setenv("COLUMNS", "160")
    res = CliRunner().invoke(app, ["bench", "--quick", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "of peak" in res.output and "GFLOP/s" in res.output
    fig = next(f for f in quick_record["figures"] if f["key"] == "train.H.b8")
    row = next(line for line in res.output.splitlines() if "arch H, batch 8 " in line)
    assert report.format_fraction(fig["of_peak"]) in row
    gemm = quick_record["peaks"][0]
    assert f"peak: {gemm['what']}: {report.format_gflops(gemm['gflops'])} GFLOP/s" in res.output
    assert "FLOPs per image of a training step" in res.output


def test_targets_follow_the_figures():
    record = {"dataset": "dsprites", "figures": [
        report.figure("train.H.b64", "t", "img/s", 300.0, 100.0),
        report.figure("train.B.b64", "t", "img/s", 120.0, 100.0),
        report.figure("train.H.b64.bf16", "t", "img/s", 100.0, 100.0, amp="bf16"),
        report.figure("train.B.b64.bf16", "t", "img/s", 200.0, 100.0, amp="bf16"),
        report.figure("first_step", "f", "s", 1.9, 30.0, higher_is_better=False),
        report.figure("peak_rss", "r", "bytes", 2e9, 15e9, higher_is_better=False),
    ]}
    targets = {t["key"]: t for t in report.targets(record, "cpu")}  # no amp_auto: float32
    assert targets["train.H.b64"]["ok"] and targets["train.H.b64"]["value"] == 3.0
    assert not targets["train.B.b64"]["ok"]
    assert targets["first_step"]["ok"] and targets["first_step"]["value"] == 1.9
    assert not targets["peak_rss"]["ok"]
    # The training targets hold for the precision --amp auto uses on the device.
    record["amp_auto"] = {"amp": "auto", "used": "bf16", "reason": "measured", "gain": {}}
    targets = {t["key"]: t for t in report.targets(record, "cpu")}
    assert not targets["train.H.b64.bf16"]["ok"] and targets["train.B.b64.bf16"]["ok"]
    assert "train.H.b64" not in targets
    record["figures"][4]["fast"] = 2.0
    assert not next(t for t in report.targets(record, "cpu") if t["key"] == "first_step")["ok"]
    assert report.format_value(2**30, "bytes") == "1,024 MB"
    assert report.format_gain(None) == "-" and report.format_gain(1.5) == "1.50x"
