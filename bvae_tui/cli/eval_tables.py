"""The tables `bvae eval` prints: a run's scores, its latent x factor information, baselines and
UDR groups. rich and the engine's light modules only (imported by the command, not at start).

Titles and cells that carry names from files (run ids, factor names, dataset names, the reason a
metric was skipped) are Text (:func:`bvae_tui.safe_text.as_text`): never parsed as markup."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from bvae_tui.engine.analysis.metrics import METRICS, TITLES
from bvae_tui.engine.analysis.mi_matrix import MIMatrix
from bvae_tui.engine.analysis.papers import PAPER_BETAVAE
from bvae_tui.safe_text import as_text

# Per metric: the detail shown in the "train" column (accuracy, informativeness or AUC).
_TRAIN = {"betavae": "train_accuracy", "factorvae": "train_accuracy",
          "dci": "informativeness_train", "explicitness": "explicitness_train"}


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _per_factor(d: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in d.get("per_factor", {}).items())


def _note(name: str, d: dict[str, Any], dataset: str | None) -> str:
    if "skipped" in d:
        return f"skipped: {d['skipped']}"
    if name == "betavae":
        # The paper's numbers are for full dSprites only; elsewhere they would mislead.
        note = (f"paper: VAE {PAPER_BETAVAE['VAE']:.3f}, "
                f"beta-VAE {PAPER_BETAVAE['beta-VAE']:.3f}" if dataset == "dsprites" else "")
        if d.get("converged") is False:  # rare since it fits standardised features
            note = "; ".join(filter(None, [note, "classifier stopped at its iteration limit: "
                                           "the score may be off by a little"]))
        return "; ".join(filter(None, [note, d.get("sampling")]))
    if name == "factorvae":
        return "; ".join(filter(None, [f"{d.get('num_active_dims', '?')} active latents",
                                       d.get("sampling")]))
    if name == "dci":
        return (f"completeness {d.get('completeness', 0):.3f}, informativeness (test) "
                f"{d.get('informativeness_test', 0):.3f}")
    if name == "modularity":
        per = d.get("per_latent") or []
        return f"per latent {min(per):.2f} to {max(per):.2f}" if per else ""
    note = _per_factor(d)
    if d.get("converged") is False:
        note += "; did not converge"
    return note


def run_table(result: dict[str, Any], title: str) -> Table:
    table = Table(title=as_text(title), title_justify="left")
    table.add_column("metric")
    table.add_column("score", justify="right")
    table.add_column("train", justify="right")
    table.add_column("notes")
    details = result["details"]
    for name in [m for m in METRICS if m in details]:
        d = details[name]
        table.add_row(TITLES[name], fmt(result["scores"].get(name)),
                      fmt(d.get(_TRAIN[name])) if name in _TRAIN else "", as_text(_note(
                          name, d, result.get("dataset"))))
    return table


def mi_table(result: dict[str, Any]) -> Table | None:
    """MI / factor entropy of each latent (rows) with each factor: which latent carries what."""
    mi = MIMatrix.from_result(result)
    if mi is None:
        return None
    share = mi.shares()
    table = Table(title="information: MI(latent; factor) / H(factor)", title_justify="left")
    table.add_column("latent")
    for name in mi.factors:
        table.add_column(as_text(name), justify="right")
    for i, row in enumerate(share):
        best = max(range(len(row)), key=row.__getitem__) if row else -1
        table.add_row(f"z{i}", *(Text(f"{v:.2f}", style="bold" if j == best and v >= 0.1
                                      else "dim" if v < 0.05 else "")
                                 for j, v in enumerate(row)))
    return table


def baseline_table(results: list[dict[str, Any]], title: str) -> Table:
    from bvae_tui.engine.analysis.baselines import TITLES as BASE_TITLES

    table = Table(title=as_text(title), title_justify="left")
    table.add_column("representation")
    shown = [m for m in METRICS if any(m in r["details"] for r in results)]
    for m in shown:
        table.add_column(TITLES[m], justify="right")
    table.add_column("paper BetaVAE", justify="right")
    table.add_column("seconds", justify="right")
    for r in results:
        label = BASE_TITLES[r["baseline"]]
        cells = ["n/a" if "skipped" in r["details"].get(m, {}) else fmt(r["scores"].get(m))
                 for m in shown]
        table.add_row(label, *cells, fmt(PAPER_BETAVAE.get(label)), f"{r['seconds']:.0f}")
    return table


def udr_table(result: dict[str, Any], group: str | None = None) -> Table:
    params = result["params"]
    table = Table(title=as_text(f"UDR{f' of {group}' if group else ''} on {result['dataset']} "
                                f"({params['num_points']:,} images, {params['correlation']}, "
                                f"seed {result['seed']})"), title_justify="left")
    for col, justify in (("run", "left"), ("seed", "right"), ("iteration", "right"),
                         ("UDR", "right"), ("active latents", "right"),
                         ("with each other run", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    best = max(r["udr"] for r in result["runs"])
    for r in result["runs"]:
        pairs = ", ".join(f"{v:.2f}" for v in r["pairwise"].values())
        table.add_row(as_text(r["run"]), str(r["seed"]), str(r["iteration"]),
                      Text(fmt(r["udr"]), style="bold" if r["udr"] == best else ""),
                      str(r["active_latents"]), pairs)
    return table
