"""`bvae gpus`: the devices training can use."""

from __future__ import annotations

from bvae_tui.cli.common import JsonOpt, console, human_bytes, print_json
from bvae_tui.cli.main import app
from bvae_tui.safe_text import as_text


@app.command()
def gpus(json: JsonOpt = False) -> None:
    """List the devices training can use: NVIDIA GPUs as NVML numbers them, and the CPU."""
    import os

    from bvae_tui.engine.runs.devices import list_gpus

    found, reason = list_gpus()
    if json:
        print_json({"gpus": [g.to_dict() for g in found], "cpu": {"cores": os.cpu_count()},
                    "reason": reason})
        return
    out = console()
    for g in found:
        util = "-" if g.utilization is None else f"{g.utilization}%"
        out.print(as_text(f"GPU {g.index}  {g.name}  free {human_bytes(g.memory_free)} of "
                          f"{human_bytes(g.memory_total)}  utilisation {util}   "
                          f"(--gpu {g.index})"))
    out.print(f"CPU  {os.cpu_count()} cores   (--device cpu)")
    if reason:  # an NVML error's text: shown as it is
        out.print(as_text(f"no GPUs: {reason}", "yellow"))
