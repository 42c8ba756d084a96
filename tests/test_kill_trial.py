"""benchmarks/kill_trial.py in small: three detached runs killed with SIGKILL (in the first
second, during a checkpoint write, while training), checked, resumed and compared with an
uninterrupted run. The 50-trial figures are in benchmarks/RESULTS.md."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_three_kill_trials_lose_and_corrupt_nothing(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kill_trial.py"),
                          "--trials", "3", "--iterations", "40", "--json"],
                         capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert out.returncode == 0, (out.stdout[-2000:], out.stderr[-2000:])
    report = json.loads(out.stdout)
    summary, trials = report["summary"], report["trials"]
    assert [t["mode"] for t in trials] == ["first second", "checkpoint write", "training"]
    assert summary["trials"] == 3
    for key in ("corrupt_files", "failed_resumes", "duplicated_rows", "missing_rows",
                "mismatched_rows", "debris_left"):
        assert summary[key] == 0, (key, trials)
    assert trials[0]["resumed_from"] == "0"  # killed while importing: trained again from 0
