"""The run directory's contract: what each file is called and what its JSON holds.

Five typed records (:mod:`bvae_tui.engine.runs.typed_json`), each with ONE reader
(``from_dict``) and ONE writer (``to_dict``): :class:`RunRecord` (config.json), :class:`Status`
(status.json), :class:`MetricsRow` (a line of metrics.jsonl), :class:`ProbeRow` (a line of
probes.jsonl) and :class:`EvalResult`
(eval.json). The reader never raises: a missing key
reads as its default (files of older versions), a value of the wrong type (or a list or map
holding one) reads as missing (a hand-edited or damaged file), and unknown keys are kept in
``extra`` and written back, so the fields of a newer version survive a rewrite by this one.
The writer writes every field under the JSON name it has always had and refuses (TypeError) a
value its reader would drop. :class:`RunSummary` is one run at a glance, for `bvae runs` and
the TUI's runs table.

Only :mod:`bvae_tui.engine.runs.store` reads and writes these files. ``docs/run-directory.md`` is
generated from this module (``python -m bvae_tui.engine.runs.records --markdown``); a test fails
when the two differ.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

from bvae_tui.engine.runs.typed_json import REQUIRED, Record, json_type
from bvae_tui.engine.runs.typed_json import doc_field as _doc

STATES = ("queued", "running", "finished", "stopped", "failed", "lost")
ACTIVE_STATES = ("queued", "running")  # states that need a live worker behind them

CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
PROBES_FILE = "probes.jsonl"
LOG_FILE = "worker.log"
EVAL_FILE = "eval.json"
EVAL_JOB_FILE = "eval_job.json"
EVAL_LOCK_FILE = ".eval.lock"
CHECKPOINTS_DIR = "checkpoints"
LAST_CHECKPOINT = "last.pt"
PREVIOUS_CHECKPOINT = "prev.pt"
LOCK_FILE = ".lock"
PREVIEWS_DIR = "previews"
PREVIEW_FILES = {"traversal": "traversal.png", "recon": "recon.png"}
EXPORTS_DIR = "exports"

# (path in the run directory, who writes it, what it holds), for the generated document.
RUN_FILES = (
    (CONFIG_FILE, "launcher, worker", "what the run is: [config.json](#configjson)"),
    (STATUS_FILE, "launcher, worker", "where the run is: [status.json](#statusjson)"),
    (METRICS_FILE, "worker", "one row per log interval: [metrics rows](#metricsjsonl)"),
    (PROBES_FILE, "worker", "one row per probe interval (`--probe-every`): "
     "[probe rows](#probesjsonl)"),
    (LOG_FILE, "worker", "stdout and stderr of a detached worker: a line per metrics row, "
     "warnings (among them an objective's estimates gone bad), the reason it ended"),
    (f"{CHECKPOINTS_DIR}/{LAST_CHECKPOINT}", "worker",
     "model, optimiser, the objective's own state (FactorVAE's discriminator and its "
     "optimiser), iteration, elapsed time, every RNG state, the batch order's state and the "
     "config; replaced atomically; loaded with `weights_only=True`"),
    (f"{CHECKPOINTS_DIR}/{PREVIOUS_CHECKPOINT}", "worker",
     f"the checkpoint before `{LAST_CHECKPOINT}`, kept until the new one is in place; readers "
     f"fall back to it (and say so) when `{LAST_CHECKPOINT}` is missing or unreadable"),
    (LOCK_FILE, "worker, foreground `bvae train` / `bvae resume`",
     "exclusive `flock` of the one process that trains the run, held for its life (freed by "
     "the kernel when it dies); holds that process's pid and host"),
    *((f"{PREVIEWS_DIR}/{name}", "worker",
       "latest traversal of the first fixed image (rows: latents by KL), every preview interval"
       if kind == "traversal" else
       "latest reconstructions: the fixed images above their reconstructions")
      for kind, name in PREVIEW_FILES.items()),
    (EVAL_FILE, "`bvae eval`, `--eval-at-end`", "disentanglement scores: [eval.json](#evaljson)"),
    (EVAL_JOB_FILE, "`bvae eval --detach`, the TUI's evaluate",
     "where a detached evaluation is: [eval_job.json](#eval_jobjson)"),
    (EVAL_LOCK_FILE, "`bvae eval --detach`, the TUI's evaluate",
     "exclusive `flock` of the one detached evaluation of the run, held while it is queued or "
     "scoring; holds that process's pid and host"),
    (f"{EXPORTS_DIR}/", "`bvae export`, the TUI's export", "traversal GIFs and PNG grids"),
)

@dataclass(kw_only=True)
class RunRecord(Record):
    """What the run is: written by the launcher when it creates the run directory; the worker
    adds what it learns when it loads the data. Replaced atomically."""

    config: dict[str, Any] = _doc("every training option, by the names `bvae train --help` "
                                  "shows (dashes as underscores)", factory=dict)
    name: str | None = _doc("run name")
    data_dir: str | None = _doc("data root the dataset is read from")
    created: float | None = _doc("when the run was created")
    host: str | None = _doc("machine it was created on")
    versions: dict[str, str] = _doc("bvae-tui, torch and numpy versions at creation",
                                    factory=dict)
    dataset_source: str | None = _doc("real, procedural or files: what the worker loaded")
    dataset_count: int | None = _doc("images in the dataset the worker loaded")
    sweep: str | None = _doc("id of the sweep the run is a member of (`runs/sweeps/<id>/`)")
    sweep_values: dict[str, Any] = _doc("the member's values of the sweep's swept fields",
                                        factory=dict)
    changes: list[dict[str, Any]] = _doc(
        "settings changed by `bvae resume` (`--lr`, `--device`), oldest first: `iteration` "
        "(where the change took effect), `time`, `field`, `old`, `new`; `config` holds the "
        "current values", factory=list)
    precision: dict[str, Any] | None = _doc(
        "what the worker trains in (engine/train/precision.py): `amp` as configured (auto, bf16, "
        "off), `used` (bf16, or off: float32), `reason`, and for auto `gain`: bf16's measured "
        "training speed over float32's per architecture")


@dataclass(kw_only=True)
class Status(Record):
    """Where the run is. Written by the launcher, the worker and a foreground
    `bvae train`, each merging its fields into the file and stamping `updated`; replaced
    atomically (write a temp file, fsync, rename). A run whose state is queued or running but
    whose worker is gone (no process with that `pid` and `pid_start`) reads as `lost`, a state
    that is never written."""

    state: str | None = _doc("queued, running, finished, stopped or failed")
    iteration: int | None = _doc("last completed training step")
    total: int | None = _doc("steps the run trains for (the config's `iterations`)")
    phase: str | None = _doc("what an active run is doing: starting, loading data, training, "
                             "evaluating")
    device: str | None = _doc("device it trains on, e.g. `cpu` or `cuda:0`")
    pid: int | None = _doc("process id of the worker (or foreground `bvae train`)")
    pid_start: int | None = _doc("that process's start time (clock ticks since boot), which "
                                 "tells it from a recycled pid")
    host: str | None = _doc("machine that process runs on; from another machine (a cluster "
                            "node) liveness is judged by `heartbeat` instead")
    job: str | None = _doc("Slurm job id of a member submitted through Slurm "
                           "(`<array job>_<index>`)")
    memory_peak: int | None = _doc("GPU memory the run reserved at its peak, bytes, measured "
                                   "after its first steps (a sweep packs GPUs by it)")
    error: str | None = _doc("one-line reason the run failed or could not start")
    eval_error: str | None = _doc("why the evaluation at the end failed (the training finished)")
    created: float | None = _doc("when the run was created (Unix time, like all times here)")
    launched: float | None = _doc("when a detached worker was last started")
    started: float | None = _doc("when training (or its latest resume) began")
    heartbeat: float | None = _doc("last sign of life of a training worker (about every second)")
    updated: float | None = _doc("last write of this file")

    @property
    def active(self) -> bool:
        return is_active(self.state)

    @property
    def activity(self) -> str | None:
        """What an active run is busy with besides training steps (e.g. loading data)."""
        return self.phase if self.active and self.phase and self.phase != "training" else None


@dataclass(kw_only=True)
class MetricsRow(Record):
    """One JSON object per line, appended and flushed by the worker every `log_every` steps (and
    when it stops), values averaged over the steps since the previous row. Readers ignore a torn
    last line; a resume first drops the rows written after its checkpoint."""

    iter: int | None = _doc("training step the row ends at")
    time: float | None = _doc("when it was written")
    elapsed: float | None = _doc("training seconds so far, across resumes")
    loss: float | None = _doc("the objective minimised, e.g. recon + beta KL (H); each "
                              "objective's formula is in `bvae train --help`")
    recon: float | None = _doc("negative log-likelihood per image (summed over pixels), nats")
    kl: float | None = _doc("KL(q(z|x) || N(0, I)) per image, summed over latents, nats")
    kl_per_latent: list[float] | None = _doc("KL of each latent, nats")
    mu_mean: list[float] | None = _doc("mean of each latent's posterior mean")
    var_mean: list[float] | None = _doc("mean of each latent's posterior variance")
    c: float | None = _doc("capacity C, nats (objective B; null for the others)")
    # The objectives' own terms (null where the run's objective has no such term).
    mi: float | None = _doc("index-code mutual information estimate, nats (tcvae)")
    tc: float | None = _doc("total correlation estimate, nats: from the batch (tcvae) or "
                            "the discriminator's density ratio (factor)")
    dw_kl: float | None = _doc("dimension-wise KL estimate, nats (tcvae)")
    disc_acc: float | None = _doc("discriminator accuracy, codes against dimension-permuted "
                                  "codes; 0.5 is chance (factor)")
    dip_od: float | None = _doc("sum of squared off-diagonal covariances of the codes "
                                "(dip-i: of the means; dip-ii: of the posterior)")
    dip_d: float | None = _doc("sum of squared deviations of that covariance's diagonal "
                               "from 1 (dip-i, dip-ii)")
    img_per_s: float | None = _doc("images per second (checkpoints and previews not counted)")

    def to_line(self) -> str:
        """The row as a line of metrics.jsonl."""
        return json.dumps(self.to_dict(), allow_nan=False) + "\n"


@dataclass(kw_only=True)
class ProbeRow(Record):
    """One JSON object per line, appended by the worker every `probe_every` steps on a dataset
    with ground-truth factors: the current encoder's means of a fixed sample of images, scored
    as `bvae eval`'s MIG scores them (so `bvae eval --metrics mig` on a checkpoint of the same
    step, with MIG's `num_train` at `sample_size` and seed `sample_seed`, reads the same points
    and gives the same matrix). Readers ignore a torn last line; a resume first drops the rows
    written after its checkpoint."""

    iter: int | None = _doc("training step the probe was taken at")
    time: float | None = _doc("when it was written")
    mig: float | None = _doc("MIG of the sample")
    factors: list[str] | None = _doc("ground-truth factor names, in order")
    mi: list[list[float]] | None = _doc("mutual information of each latent (rows) with each "
                                        "factor (columns, as in `factors`) divided by the "
                                        "factor's entropy: the share of the factor the latent "
                                        "carries, latents in `num_bins` histogram bins")
    factor_entropy: list[float] | None = _doc("entropy of each factor on the sample, nats")
    best_latent: list[int] | None = _doc("per factor, the latent that carries most of it")
    gaps: list[float] | None = _doc("per factor, MIG's gap: the best latent's share minus the "
                                    "second best's")
    sample_seed: int | None = _doc("seed the sample was drawn with (as MIG draws its points)")
    sample_size: int | None = _doc("images in the sample")
    sample_sha1: str | None = _doc("SHA-1 of the sample's dataset indices (int64), to check "
                                   "a redrawn sample against")
    num_bins: int | None = _doc("histogram bins per latent")
    seconds: float | None = _doc("wall time of the probe")

    def to_line(self) -> str:
        """The row as a line of probes.jsonl."""
        return json.dumps(self.to_dict(), allow_nan=False) + "\n"


@dataclass(kw_only=True)
class EvalResult(Record):
    """Disentanglement scores of one checkpoint, written atomically by `bvae eval`
    (or at the end of training with `--eval-at-end`). Scoring some metrics again on the same
    checkpoint, seed, sample counts and dataset keeps the other metrics' results; anything else
    replaces the file."""

    scores: dict[str, float] = _doc("score per metric: betavae, factorvae, mig, dci, sap, "
                                    "modularity, explicitness; udr from `bvae eval --udr`",
                                    factory=dict)
    details: dict[str, Any] = _doc("per metric: accuracies, active latents, per-factor gaps, "
                                   "DCI's completeness and informativeness and importance "
                                   "matrix, SAP's accuracy matrix, UDR's group and pairwise "
                                   "scores", factory=dict)
    params: dict[str, Any] = _doc("per metric: the sample counts used", factory=dict)
    timings: dict[str, float] = _doc("seconds per stage: sampling, encode, each metric",
                                     factory=dict)
    cpu_timings: dict[str, float] = _doc("CPU seconds per stage, all threads of the process: "
                                         "the cost whatever else the machine was doing",
                                         factory=dict)
    seed: int | None = _doc("seed of the metrics' sampling")
    fast: bool | None = _doc("smaller sample counts (`--fast`)")
    exact: bool | None = _doc("disentanglement_lib's own draws and trees (`--exact`); false: "
                              "BetaVAE and FactorVAE drew from a pool of images (details: "
                              "`pool`) and DCI grew histogram trees (details: `trees`)")
    run: str | None = _doc("run id")
    iteration: int | None = _doc("training step of the checkpoint scored")
    checkpoint: str | None = _doc("checkpoint scored (relative to the run directory if in it)")
    dataset: str | None = _doc("dataset scored on")
    factors: list[str] | None = _doc("ground-truth factor names, in order")
    mi: list[list[float]] | None = _doc("mutual information (nats) of each latent (rows) with "
                                        "each factor (columns, as in `factors`) on MIG's points, "
                                        "latents in 20 histogram bins")
    factor_entropy: list[float] | None = _doc("entropy of each factor on those points, nats "
                                              "(`mi` / entropy: the share of a factor a latent "
                                              "carries)")
    device: str | None = _doc("device the images were encoded on")
    arch: str | None = _doc("model architecture")
    z_dim: int | None = _doc("number of latents")
    encoded: int | None = _doc("images encoded")
    seconds: float | None = _doc("wall time of the whole evaluation")
    created: float | None = _doc("when it was written")


@dataclass(kw_only=True)
class EvalJob(Record):
    """Where a detached evaluation (`bvae eval RUN --detach`, the TUI's evaluate) is: written
    by the launcher (queued) and by the evaluating process, replaced atomically. It scores with
    `bvae eval`'s own code and writes eval.json only when every metric is done, so a failed
    evaluation leaves the previous eval.json as it was. A queued or running job whose process is
    gone reads as `lost`, a state that is never written."""

    state: str | None = _doc("queued, running, finished or failed")
    fast: bool | None = _doc("reduced samples (`--fast`)")
    metrics: list[str] | None = _doc("metrics to score, in order")
    seed: int | None = _doc("seed of the metrics' sampling")
    done: int | None = _doc("metrics scored so far")
    total: int | None = _doc("metrics to score")
    stage: str | None = _doc("what it is doing, e.g. `encoding images` or `scoring MIG`")
    stage_done: int | None = _doc("items of the stage done (images encoded)")
    stage_total: int | None = _doc("items of the stage in all")
    pid: int | None = _doc("process id of the evaluating process")
    pid_start: int | None = _doc("that process's start time (clock ticks since boot)")
    host: str | None = _doc("machine that process runs on")
    error: str | None = _doc("one-line reason the evaluation failed")
    created: float | None = _doc("when it was launched")
    started: float | None = _doc("when scoring this run began")
    updated: float | None = _doc("last write of this file")


EVAL_JOB_STATES = ("queued", "running", "finished", "failed", "lost")


def is_active(state: str | None) -> bool:
    """Does a run in ``state`` need a live worker behind it?"""
    return state in ACTIVE_STATES


@dataclass(frozen=True, kw_only=True)
class RunSummary:
    """One run at a glance, built by `Run.summary()` from its files: a line of `bvae runs` and of
    the TUI's runs table. `bvae runs --json` prints the keys in ``JSON_KEYS``, in that order."""

    JSON_KEYS: ClassVar[tuple[str, ...]] = (
        "id", "name", "path", "state", "iteration", "total", "device", "dataset", "objective",
        "created", "updated", "error", "loss", "kl", "img_per_s", "sweep")

    id: str = _doc("run id: creation time and a slug of its name", REQUIRED)
    name: str = _doc("run name (`--name`, else made from the config)", REQUIRED)
    path: str = _doc("run directory", REQUIRED)
    state: str = _doc("state, with `lost` worked out", REQUIRED)
    iteration: int = _doc("last completed step (status.json, else the last metrics row)", 0)
    total: int | None = _doc("steps it trains for")
    device: str | None = _doc("device it trains (or trained) on, else the configured one")
    dataset: str | None = _doc("dataset name")
    objective: str | None = _doc("H, B, tcvae, factor, dip-i or dip-ii")
    created: float | None = _doc("when the run was created")
    updated: float | None = _doc("last write of status.json")
    error: str | None = _doc("why it failed or is lost, or why its config cannot be read")
    loss: float | None = _doc("loss of the last metrics row")
    kl: float | None = _doc("KL of the last metrics row")
    img_per_s: float | None = _doc("images per second of the last metrics row")
    sweep: str | None = _doc("sweep the run is a member of")
    # Not printed by --json: what the TUI shows besides.
    started: float | None = _doc("when training (or its latest resume) began")
    duration: float | None = _doc("seconds since `started` (to the last update when not running)")
    activity: str | None = _doc("what an active run is busy with besides training steps")
    eval_error: str | None = _doc("why the evaluation at the end failed")
    evaluation: str | None = _doc("a detached evaluation's progress or failure, e.g. "
                                  "`evaluating 3/7 metrics`")
    config_error: str | None = _doc("why config.json cannot be read")
    dataset_source: str | None = _doc("real, procedural or files, once the worker has loaded it")
    data_dir: str | None = _doc("data root the run reads its dataset from")
    scores: dict[str, float] = _doc("eval.json's scores", factory=dict)
    config: dict[str, Any] = _doc("config.json's `config` ({} when unreadable)", factory=dict)
    sweep_values: dict[str, Any] = _doc("its values of the sweep's swept fields", factory=dict)

    @property
    def active(self) -> bool:
        return is_active(self.state)

    @property
    def note(self) -> str:
        """What to say beside the state: what went wrong, or what an active run is doing."""
        if self.evaluation and not self.active:
            return self.evaluation
        if self.state == "finished":
            if self.eval_error:
                return f"evaluation failed: {self.eval_error}"
            return self.config_error or ""
        return self.error or self.activity or ""

    def as_json(self) -> dict[str, Any]:
        """The `bvae runs --json` object (keys fixed: scripts rely on them)."""
        return {key: getattr(self, key) for key in self.JSON_KEYS}


# --------------------------------------------------------------------------------------------
# The generated document


def _table(cls: type, keys: tuple[str, ...] | None = None) -> list[str]:
    hints = typing.get_type_hints(cls)
    docs = {f.name: f.metadata["doc"] for f in dataclasses.fields(cls) if f.name != "extra"}
    lines = ["| field | JSON type | meaning |", "|---|---|---|"]
    for name in keys or tuple(docs):
        meaning = docs[name].replace("|", "\\|")  # a bar would end the table cell
        lines.append(f"| `{name}` | {json_type(hints[name])} | {meaning} |")
    return lines


def _paragraph(cls: type) -> str:
    return " ".join((cls.__doc__ or "").split())


def markdown() -> str:
    """docs/run-directory.md, from the records and file names above."""
    out = [
        "# The run directory",
        "",
        "<!-- Generated by `python -m bvae_tui.engine.runs.records --markdown` (`make docs`) from",
        "     engine/runs/records.py; tests/test_records.py fails when this file differs. -->",
        "",
        "Everything a run is lives in `<runs root>/<run id>/` (root: `--runs-dir`, "
        "`$BVAE_RUNS_DIR`, else `./runs`). The CLI and the TUI read only these files, so a run "
        "started from one shows up live in the other. Only `engine/runs/store.py` reads and "
        "writes them.",
        "",
        "| file | written by | content |",
        "|---|---|---|",
        *(f"| `{path}` | {writer} | {content} |" for path, writer, content in RUN_FILES),
        "",
        "Reading rules for the JSON files: a missing key reads as null or empty (files of older "
        "versions); a value of the wrong type, or a list or map holding one, reads as if it were "
        "missing (a damaged or hand-edited file never stops a reader); unknown keys are kept "
        "and written back, so fields of a newer version survive a rewrite by an older one. "
        "Times are Unix times in seconds.",
    ]
    for title, cls in (("config.json", RunRecord), ("status.json", Status),
                       ("metrics.jsonl", MetricsRow), ("probes.jsonl", ProbeRow),
                       ("eval.json", EvalResult), ("eval_job.json", EvalJob)):
        out += ["", f"## {title}", "", _paragraph(cls), "", *_table(cls)]
    out += ["", "## bvae runs --json", "",
            "A list with one object per run, oldest first, with these keys (scripts may rely on "
            "them; the TUI's runs table shows the same summary).", "",
            *_table(RunSummary, RunSummary.JSON_KEYS)]
    from bvae_tui.engine.runs.sweeps.records import markdown_lines

    return "\n".join([*out, *markdown_lines(_table, _paragraph), ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bvae_tui.engine.runs.records",
                                     description="the run directory's contract")
    parser.add_argument("--markdown", action="store_true",
                        help="print docs/run-directory.md as the code defines it")
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(markdown())
    else:
        parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
