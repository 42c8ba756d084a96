"""`bvae bench`: this project's training path against the textbook PyTorch loop, same device."""

from __future__ import annotations

from typing import Annotated

import typer

from bvae_tui.cli.common import DataDirOpt, JsonOpt, console, print_json
from bvae_tui.cli.main import app
from bvae_tui.safe_text import as_text, markup_safe


@app.command(rich_help_panel="Study")
def bench(
    device: Annotated[str, typer.Option(
        "--device", help="cpu, cuda:N or auto (the GPU with most free memory, else cpu)")] = "cpu",
    quick: Annotated[bool, typer.Option(
        "--quick", help="tiny sizes on dsprites-mini (seconds; checks the machinery, not speed)",
    )] = False,
    end_to_end: Annotated[bool, typer.Option(
        "--end-to-end/--no-end-to-end",
        help="also launch `bvae train` for the time to first step and peak RSS")] = True,
    data_dir: DataDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Measure training, data and eval speed, time to first step and peak memory, each beside
    the textbook PyTorch loop (DataLoader over a float32 TensorDataset) run in the same call;
    and each training figure's GFLOP/s as a fraction of this machine's GEMM peak, measured in
    the same call."""
    import sys

    from bvae_tui.engine.bench.report import (
        format_fraction,
        format_gain,
        format_gflops,
        format_target,
        format_value,
    )
    from bvae_tui.engine.bench.suite import run_bench
    from bvae_tui.engine.runs.devices import resolve_device

    dev = resolve_device(device)
    out = console()
    err = sys.stderr

    def progress(message: str) -> None:
        if not json_out:
            out.print(f"[dim]{markup_safe(message)}...[/dim]")
        else:
            err.write(f"{message}...\n")
            err.flush()

    record = run_bench(dev, quick=quick, data_dir=data_dir, progress=progress,
                       end_to_end=end_to_end)
    from bvae_tui.engine.bench.figures import save_record

    saved = save_record(record)  # for `bvae sweep --dry-run`'s time estimates
    if saved is not None:
        err.write(f"training figures saved in {saved} (bvae sweep --dry-run estimates from "
                  "them)\n")
    if json_out:
        print_json(record)
        return

    from rich.table import Table

    table = Table(title=as_text(f"bvae bench on {record['device']} ({record['device_name']}), "
                                f"{record['threads']} threads, torch {record['torch']}"))
    table.add_column("figure")
    table.add_column("bvae", justify="right")
    table.add_column("textbook loop", justify="right")
    table.add_column("gain", justify="right")
    table.add_column("GFLOP/s", justify="right")
    table.add_column("of peak", justify="right")
    for fig in record["figures"]:
        table.add_row(fig["what"], format_value(fig["fast"], fig["unit"]),
                      format_value(fig["baseline"], fig["unit"]), format_gain(fig["gain"]),
                      format_gflops(fig.get("gflops")), format_fraction(fig.get("of_peak")))
    out.print(table)
    # "of peak" is of the GEMM peak of the figure's dtype; the peaks, measured in this call:
    for p in record.get("peaks", []):
        out.print(as_text(f"peak: {p['what']}: {format_gflops(p['gflops'])} GFLOP/s"))
    flops = {f["key"].split(".")[1]: f["flops_per_image"] for f in record["figures"]
             if f.get("flops_per_image")}
    if flops:
        out.print(as_text("FLOPs per image of a training step (forward, backward, Adam): "
                          + ", ".join(f"arch {a} {v / 1e6:.1f} M" for a, v in flops.items())))
    notes = sorted({fig["note"] for fig in record["figures"] if fig["note"]})
    for note in notes:
        out.print(as_text(f"note: {note}"))
    out.print(as_text(f"dataset: {record['dataset']} ({record['dataset_source']}); the textbook "
                      f"loop holds {record['baseline_images']:,} images as float32; medians of "
                      f"the interleaved rounds; {record['seconds']:.0f} s in all; load average "
                      f"{' -> '.join(str(v) for v in record['load'])} on {record['cpus']} CPUs"))
    if record.get("amp_auto"):
        from bvae_tui.engine.train.precision import describe

        out.print(as_text(f"precision on this device: {describe(record['amp_auto'])}"))
    for target in record["targets"]:
        shown = format_target(target)
        mark = "[green]ok[/green]" if target["ok"] else "[red]missed[/red]"
        out.print(f"target {target['what']} {target['target']}: {shown} {mark}")
