"""`bvae explore RUN`: what the Explore screen draws, headless, for scripts and papers.

The source image by index or by factor classes, latents set by hand, the traversal row of one
latent, written as a PNG (the three images and the row) or a GIF (the row); ``--respond FACTOR``
prints the inverse view (how each latent's mean moves when that factor steps) as a table or JSON.
Everything is computed by :class:`~bvae_tui.engine.analysis.explore.Explorer`, the screen's
engine; torch is imported inside the command so `bvae --help` stays fast.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bvae_tui.cli.common import DataDirOpt, JsonOpt, RunArg, RunsDirOpt, find_run, print_json
from bvae_tui.cli.main import app
from bvae_tui.safe_text import plain

_SRC = "Source image"
_CODE = "Code"


@app.command("explore", rich_help_panel="Results")
def explore(
    run: RunArg,
    image: Annotated[int | None, typer.Option(
        "--image", help="dataset index of the source image (default: the exports' first fixed "
        "image)", show_default=False, rich_help_panel=_SRC)] = None,
    factors: Annotated[str | None, typer.Option(
        "--factors", help="pick the source image by factor classes, e.g. shape=heart,scale=2 "
        "(others: largest scale, angle 0, centre)", show_default=False,
        rich_help_panel=_SRC)] = None,
    set_: Annotated[str | None, typer.Option(
        "--set", help="latents to set on the source's code, e.g. z2=1.5,z7=-1",
        show_default=False, rich_help_panel=_CODE)] = None,
    traverse: Annotated[str | None, typer.Option(
        "--traverse", help="the latent whose traversal row is drawn, e.g. z2 (default: the "
        "last one --set names, else the one with the most KL)", show_default=False,
        rich_help_panel=_CODE)] = None,
    respond: Annotated[str | None, typer.Option(
        "--respond", help="print how each latent's mean moves when this factor of the source "
        "image steps to its next class, e.g. posX", show_default=False)] = None,
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="FILE.png (three images and the row) or FILE.gif (the row), or "
        "a folder (default: RUN/exports/)", show_default=False)] = None,
    limit: Annotated[float, typer.Option("--limit", help="the row spans [-limit, limit]",
                                         rich_help_panel=_CODE)] = 3.0,
    steps: Annotated[int, typer.Option("--steps", help="values in the row",
                                       rich_help_panel=_CODE)] = 10,
    fps: Annotated[float, typer.Option("--fps", help="GIF frames per second")] = 5.0,
    device: Annotated[str, typer.Option(
        "--device", help="cpu, cuda:N or auto (cpu works for runs trained on a GPU)")] = "cpu",
    json_out: JsonOpt = False,
    runs_dir: RunsDirOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Move latents of one image by hand: its reconstruction, the edited decode and a
    latent's traversal row (PNG or GIF), or the latents' response to one factor (--respond)."""
    from bvae_tui.engine.analysis import explore as ex
    from bvae_tui.engine.analysis.export import check_options

    check_options(limit, steps, fps)
    if image is not None and factors is not None:
        from bvae_tui.engine.errors import ConfigError

        raise ConfigError("give --image or --factors, not both")
    explorer = ex.open_explorer(find_run(run, runs_dir), device=device, data_dir=data_dir,
                                limit=limit)
    if explorer.loaded.note:
        typer.echo(f"warning: {plain(explorer.loaded.note)}", err=True)
    index = _source_index(explorer, image, factors)
    edits = ex.parse_set(set_, explorer.z_dim) if set_ is not None else {}
    latent = (ex.parse_latent(traverse, explorer.z_dim) if traverse is not None
              else list(edits)[-1] if edits else explorer.order[0])
    reply = explorer.respond(index, respond) if respond is not None else None
    base, source = explorer.base(index)
    code = base.copy()
    for k, value in edits.items():
        code[k] = value
    view = explorer.view(index, base, code, latent, source, steps=steps)
    paths = ex.save_view(explorer, view, output, fps=fps) \
        if reply is None or output is not None else []
    if json_out:
        print_json(_json(explorer, view, reply, paths))
    elif reply is not None:
        _print_response(explorer, reply)
        for path in paths:
            typer.echo(plain(path))
    else:
        for path in paths:
            typer.echo(plain(path))


def _source_index(explorer: Any, image: int | None, factors: str | None) -> int:
    """The source image's index: given, found by its factor classes, or the default one."""
    from bvae_tui.engine.analysis import explore as ex
    from bvae_tui.engine.analysis.visualise import fixed_indices

    if image is not None:
        return explorer.check_index(image)
    dataset = explorer.need_dataset()
    if factors is not None:
        return explorer.index_for(ex.parse_factors(dataset, factors))
    return int(fixed_indices(dataset, n=1)[0])


def _json(explorer: Any, view: Any, reply: Any, paths: list) -> dict[str, Any]:
    out: dict[str, Any] = {
        "run": explorer.run.id, "iteration": explorer.iteration,
        "checkpoint": str(explorer.loaded.path), "index": view.index,
        "classes": explorer.classes_of(view.index) if explorer.has_factors else None,
        "latent": f"z{view.latent}", "values": [float(v) for v in view.values],
        "base": [float(v) for v in view.base], "code": [float(v) for v in view.code],
        "files": [str(p) for p in paths],
    }
    if reply is not None:
        out["respond"] = reply.to_dict(explorer.order)
    if explorer.loaded.note:
        out["note"] = explorer.loaded.note
    return out


def _bar(value: float, scale: float, half: int = 10) -> str:
    """A signed bar: left of the axis for a negative value, right for a positive one."""
    n = min(half, int(round(abs(value) / scale * half))) if scale > 0 else 0
    left = " " * (half - n) + "█" * n if value < 0 else " " * half
    right = "█" * n + " " * (half - n) if value > 0 else " " * half
    return f"{left}│{right}"


def _print_response(explorer: Any, reply: Any) -> None:
    from bvae_tui.engine.analysis import explore as ex

    ds = explorer.dataset
    size = int(ds.factor_sizes[list(ds.factor_names).index(reply.factor)])
    before = ex.class_label(reply.factor, size, reply.from_class, ds)
    after = ex.class_label(reply.factor, size, reply.to_class, ds)
    typer.echo(f"{reply.factor} {before} -> {after} (image {reply.index} -> {reply.to_index}): "
               "change of each latent's mean")
    scale = max(float(abs(reply.delta).max()), 1e-6)
    for k in explorer.order:
        info = explorer.latents[k]
        tag = f"{info.factor} {info.share:.2f}" if info.factor else ""
        mark = "●" if info.active else " "
        typer.echo(f"{mark} z{k:<3} {reply.before[k]:+8.3f} -> {reply.after[k]:+8.3f}  "
                   f"{reply.delta[k]:+8.3f} {_bar(float(reply.delta[k]), scale)} {plain(tag)}")
