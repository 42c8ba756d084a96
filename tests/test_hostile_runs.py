"""A shared runs dir may hold anything: what a hostile or damaged one must never make the tool do.

Each test builds one case of the hardening issue (ids that point out of the root, paths that
shadow runs, links where the tool writes, FIFOs and nested JSON where it reads) and checks that
nothing outside the runs root changes and that the command says one line and exits non-zero.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bvae_tui.cli.main import app
from bvae_tui.engine.config import make_config
from bvae_tui.engine.errors import RunError, SweepError
from bvae_tui.engine.runs.files import JsonLinesTail, last_json_line, read_json
from bvae_tui.engine.runs.lock import RunLock
from bvae_tui.engine.runs.store import Run, create_run, delete_run, find_run, list_runs
from tests.conftest import bvae_command


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), input=input)


def one_line_error(result, *needles: str) -> str:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _cfg():
    return make_config(None, dataset="dsprites-mini", iterations=10, z_dim=4)


def stopped_run(runs_dir: Path, tmp_path: Path, name: str | None = None) -> Run:
    """A run that may be deleted (a new run reads 'queued' for a minute)."""
    run = create_run(runs_dir, _cfg(), tmp_path, name=name)
    run.write_status(state="stopped")
    return run


def victim(tmp_path: Path, name: str = "victim") -> Path:
    """A directory outside the runs root that looks like a run (a config.json)."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"config": {"dataset": "dsprites-mini"}}))
    (folder / "precious.txt").write_text("keep me\n")
    return folder


def make_sweep(runs_dir: Path, data_dir: Path, n: int = 2):
    from bvae_tui.engine.runs.sweeps.records import SchedulerStatus, SweepRecord
    from bvae_tui.engine.runs.sweeps.store import create_sweep

    members = [({"seed": s}, make_config(None, dataset="dsprites-mini", iterations=10, z_dim=4,
                                         seed=s)) for s in range(1, n + 1)]
    record = SweepRecord(name="hostile", axes=["seed"], values={"seed": list(range(1, n + 1))})
    return create_sweep(runs_dir, record, members, data_dir, SchedulerStatus(state="stopped"))


def rewrite_members(sweep, members: list[str]) -> None:
    data = json.loads(sweep.record_path.read_text())
    data["members"] = members
    sweep.record_path.write_text(json.dumps(data))


# 1. sweep rm deletes only what is provably the sweep's -------------------------------------


def test_sweep_rm_never_follows_member_ids_out_of_the_root(runs_dir, tmp_path):
    outside = victim(tmp_path, "outside")
    absolute = victim(tmp_path, "absolute")
    sweep = make_sweep(runs_dir, tmp_path)
    genuine = [m.id for m in sweep.members()]
    stranger = create_run(runs_dir, _cfg(), tmp_path, name="someone-elses")
    rewrite_members(sweep, [*genuine, "../outside", str(absolute), stranger.id, ""])

    with pytest.raises(SweepError, match="not a run id"):
        sweep.members()  # readers refuse the hostile record in one line

    result = invoke("sweep", "rm", sweep.id, "--yes", "--runs-dir", str(runs_dir))
    assert result.exit_code == 0, result.output
    assert (outside / "precious.txt").exists() and (absolute / "precious.txt").exists()
    assert stranger.path.is_dir(), "a run whose config.json names no sweep is not a member"
    assert not any((runs_dir / m).exists() for m in genuine)
    assert not sweep.path.exists()


def test_sweep_member_ids_stay_runs_of_that_sweep(runs_dir, tmp_path):
    sweep = make_sweep(runs_dir, tmp_path)
    stranger = create_run(runs_dir, _cfg(), tmp_path, name="someone-elses")
    rewrite_members(sweep, [sweep.record().members[0], stranger.id])
    assert [r.id for r in sweep.members()] == [sweep.record().members[0]]
    with pytest.raises(SweepError, match="no member"):
        sweep.member(stranger.id)


def test_config_naming_a_sweep_path_is_refused(runs_dir, tmp_path):
    from bvae_tui.engine.runs.sweeps.members import sweep_dir

    run = create_run(runs_dir, _cfg(), tmp_path, sweep="../../elsewhere")
    with pytest.raises(SweepError, match="not a sweep id"):
        sweep_dir(run)


def test_find_sweep_by_path_only_under_the_sweeps_root(runs_dir, tmp_path):
    from bvae_tui.engine.runs.sweeps.store import find_sweep

    sweep = make_sweep(runs_dir, tmp_path)
    assert find_sweep(runs_dir, str(sweep.path)).path == sweep.path
    copy = tmp_path / "elsewhere" / sweep.id
    copy.parent.mkdir()
    os.symlink(sweep.path, copy)
    with pytest.raises(SweepError, match="symbolic link"):
        find_sweep(runs_dir, str(copy))
    one_line_error(invoke("sweep", "rm", "--yes", str(tmp_path), "--runs-dir", str(runs_dir)),
                   "sweep")


# 2. runs rm takes ids, prefixes, names, and paths under the root only --------------------


def test_runs_rm_refuses_a_directory_outside_the_root(runs_dir, tmp_path):
    outside = victim(tmp_path)
    one_line_error(invoke("runs", "rm", str(outside), "--yes"), "not a run directory under")
    assert (outside / "precious.txt").exists()


def test_a_folder_in_the_current_directory_does_not_shadow_a_run(runs_dir, tmp_path,
                                                                 monkeypatch):
    run = stopped_run(runs_dir, tmp_path, name="alpha")
    work = tmp_path / "cwd"
    work.mkdir()
    victim(work, run.id)  # same name as the run
    monkeypatch.chdir(work)
    assert find_run(runs_dir, run.id).path == run.path
    result = invoke("runs", "rm", run.id, "--yes")
    assert result.exit_code == 0, result.output
    assert not run.path.exists()
    assert (work / run.id / "precious.txt").exists()


@pytest.mark.parametrize("ref", ["", " "])
def test_an_empty_ref_matches_nothing(runs_dir, tmp_path, ref):
    run = stopped_run(runs_dir, tmp_path)
    one_line_error(invoke("runs", "rm", ref, "--yes"), "the name is empty")
    assert run.path.exists()


def test_a_path_under_the_root_still_names_its_run(runs_dir, tmp_path, monkeypatch):
    run = create_run(runs_dir, _cfg(), tmp_path)
    monkeypatch.chdir(runs_dir.parent)
    assert find_run(runs_dir, f"runs/{run.id}/").path == run.path


# 11 (part). A symlinked run directory is refused whole, never half-deleted -------------


def test_a_symlinked_run_directory_is_not_deleted(runs_dir, tmp_path):
    target = victim(tmp_path, "target")
    os.symlink(target, runs_dir / "20260101-000000-linked")
    assert [r.id for r in list_runs(runs_dir)] == []
    one_line_error(invoke("runs", "rm", "20260101-000000-linked", "--yes"), "symbolic link")
    with pytest.raises(RunError, match="symbolic link"):
        delete_run(Run(runs_dir / "20260101-000000-linked"))
    assert (target / "precious.txt").exists()
    assert (runs_dir / "20260101-000000-linked").is_symlink()
    assert not [p for p in runs_dir.iterdir() if p.name.startswith(".deleting")]


# 3. The lock never follows a link, never truncates another file --------------------------


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo"])
def test_lock_file_that_is_not_a_plain_file(runs_dir, tmp_path, kind):
    run = stopped_run(runs_dir, tmp_path)
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me\n")
    lock = run.path / ".lock"
    if kind == "symlink":
        os.symlink(precious, lock)
    elif kind == "hardlink":
        os.link(precious, lock)
    else:
        os.mkfifo(lock)
    with pytest.raises(RunError, match="not a plain lock file"):
        RunLock(run).acquire()
    assert precious.read_text() == "keep me\n"
    one_line_error(invoke("runs", "rm", run.id, "--yes"), "lock")
    assert run.path.is_dir()


def test_writers_do_not_append_through_links(runs_dir, tmp_path):
    from bvae_tui.engine.runs.guard import open_append, real_subdir

    run = create_run(runs_dir, _cfg(), tmp_path)
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me\n")
    os.symlink(precious, run.metrics_path)
    with pytest.raises(RunError, match="symbolic link"):
        open_append(run.metrics_path)
    os.symlink(tmp_path, run.checkpoint_dir)
    with pytest.raises(RunError, match="link"):
        real_subdir(run.checkpoint_dir)
    assert precious.read_text() == "keep me\n"


# 8. Hostile run files: nested JSON, FIFOs, huge lines --------------------------------------


def test_deeply_nested_json_reads_as_damaged(tmp_path):
    path = tmp_path / "status.json"
    path.write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    assert read_json(path) is None
    path.write_text(json.dumps({"state": "running", "x": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}))
    assert read_json(path) is not None  # a few levels are fine


def test_fifo_status_does_not_hang_bvae_runs(runs_dir, tmp_path, env):
    hidden = create_run(runs_dir, _cfg(), tmp_path, name="visible")
    bad = create_run(runs_dir, _cfg(), tmp_path, name="fifo")
    for name in ("status.json", "config.json", "metrics.jsonl", "eval.json", "worker.log"):
        os.unlink(bad.path / name) if (bad.path / name).exists() else None
        os.mkfifo(bad.path / name)
    proc = subprocess.run([*bvae_command(), "runs", "--json"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    ids = {row["id"] for row in json.loads(proc.stdout)}
    assert hidden.id in ids


def test_huge_metrics_line_is_skipped_in_bounded_reads(tmp_path):
    path = tmp_path / "metrics.jsonl"
    size = 8 * 2**20
    with open(path, "wb") as fh:
        fh.write(b'{"iter": 1}\n')
        fh.write(b'{"iter": 2, "pad": "' + b"x" * size + b'"}\n')
        fh.write(b'{"iter": 3}\n')
    tail = JsonLinesTail(path, max_read=2**20 + 1)
    rows = []
    for _ in range(20):  # each call reads a bounded chunk; the long line is dropped
        rows += tail.read_new()
    assert [r["iter"] for r in rows] == [1, 3]
    assert last_json_line(path) == {"iter": 3}
    with open(path, "ab") as fh:  # a huge last line: the row before it is too far back
        fh.write(b'{"iter": 4, "pad": "' + b"x" * size + b'"}\n')
    assert last_json_line(path) is None


# 11 (part). --seed has an upper bound ------------------------------------------------------


def test_seed_beyond_32_bits_is_one_line(runs_dir, env_data):
    one_line_error(invoke("train", "--dataset", "dsprites-mini", "--seed", str(2**32),
                          "--iterations", "1"), "--seed", "at most")
    assert list(runs_dir.iterdir()) == []


def test_bvae_runs_survives_a_lock_read_that_blocks(runs_dir, tmp_path, env):
    """A FIFO as .lock: `bvae runs` asks who holds each run and must not wait on it."""
    run = create_run(runs_dir, _cfg(), tmp_path)
    os.mkfifo(run.path / ".lock")
    done = threading.Event()
    result: list = []

    def go() -> None:
        result.append(subprocess.run([*bvae_command(), "runs", "--json"], env=env,
                                     capture_output=True, text=True, timeout=120))
        done.set()

    threading.Thread(target=go, daemon=True).start()
    assert done.wait(120)
    assert result[0].returncode == 0, result[0].stderr
