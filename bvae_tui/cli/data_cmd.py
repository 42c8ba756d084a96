"""`bvae data list | prepare | download | export`: the dataset cache from the command line.

The datasets package does the work; this module only shows it (a rich progress display fed by
the package's ``progress(stage, done, total)`` callback). Dataset modules are imported inside
the commands so `bvae --help` stays fast.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from bvae_tui.cli.common import DataDirOpt, JsonOpt, human_bytes, print_json
from bvae_tui.cli.main import app

data_app = typer.Typer(help="List, prepare, download and export datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data", rich_help_panel="Data")

NameArg = Annotated[str, typer.Argument(
    help="a name from `bvae data list` (dsprites, color-dsprites, shapes3d, smallnorb, cars3d, "
         "mpi3d-toy, celeba, ...) or folder:PATH",
    show_default=False)]

ImageSizeOpt = Annotated[int, typer.Option(
    "--image-size", help="image side: 32, 64 or 128 (32 and 128 for datasets larger than 64x64 "
    "at the source: celeba, chairs, folder:PATH); each size is a cache of its own")]

_STAGES = {"generate": "generating", "import": "importing", "decode": "decoding",
           "download": "downloading", "verify": "verifying", "export": "exporting"}


def console():
    """A rich console on stdout that draws text as it is: what these commands print names data
    sets, folders and factors (a folder called 'x[/]' is a path, not markup to parse)."""
    from rich.console import Console

    return Console(highlight=False, markup=False)


@contextlib.contextmanager
def progress_display(label: str, quiet: bool = False) -> Iterator:
    """A rich progress display; yields a ``progress(stage, done, total)`` callback for datasets.

    Byte stages (download) show sizes and speed; item stages show counts. Quiet: no display.
    """
    if quiet:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    out = console()
    tasks: dict[str, tuple[Progress, int]] = {}
    bars: list[Progress] = []

    def callback(stage: str, done: int, total: int | None) -> None:
        if stage == "rebuild":  # a notice, not a stage with progress (prepare_cmd says it)
            return
        if stage not in tasks:
            if stage == "download":
                bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                               DownloadColumn(),
                               TransferSpeedColumn(), TimeRemainingColumn(), console=out)
            else:
                bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                               MofNCompleteColumn(), TimeElapsedColumn(),
                               TimeRemainingColumn(), console=out)
            for other in bars:  # one live display at a time
                other.stop()
            bar.start()
            bars.append(bar)
            tasks[stage] = (bar, bar.add_task(f"{_STAGES.get(stage, stage)} {label}",
                                              total=total))
        bar, task = tasks[stage]
        bar.update(task, completed=done, total=total)

    try:
        yield callback
    finally:
        for bar in bars:
            bar.stop()


def _folder_caches(root: Path) -> dict[str, Path]:
    """The ``folder:PATH`` datasets prepared under the data root, each with its (64px, or
    first found) cache directory."""
    from bvae_tui.datasets import cache

    found: dict[str, Path] = {}
    if root.is_dir():
        for d in sorted(root.glob("folder-*")):
            meta = cache.read_meta(d)
            name = str(meta.get("name", "")) if meta else ""
            if name.startswith("folder:") and name not in found:  # its 128px cache, say,
                found[name] = d  # is another dir
    return found


def _all_names(data_dir: str | None) -> list[str]:
    """Fixed datasets plus image folders that have been prepared under the data root."""
    from bvae_tui.datasets.registry import data_root, dataset_names

    names = dataset_names()
    return names + [n for n in _folder_caches(data_root(data_dir)) if n not in names]


def _unreadable_folder(name: str, cdir: Path, exc: Exception) -> dict:
    """The row of a prepared folder whose spec cannot be made any more (its factors.csv
    header went bad since): not usable, the reason shown, the rest of the listing intact."""
    from bvae_tui.datasets import cache

    return {"name": name, "title": f"images under {name[len('folder:'):]}", "image_size": 64,
            "prepared": False, "source": "damaged", "size_bytes": cache.dir_size(cdir),
            "location": str(cdir), "count": None, "stale": False, "problem": str(exc),
            "fix": None}


def _statuses(data_dir: str | None) -> list[dict]:
    """``dataset_status`` of every dataset at 64, and at each other size prepared."""
    from bvae_tui.datasets.errors import DataError
    from bvae_tui.datasets.image_size import prepared_sizes
    from bvae_tui.datasets.loader import dataset_status
    from bvae_tui.datasets.registry import data_root, get_spec

    root = data_root(data_dir)
    folders = _folder_caches(root)
    rows = []
    for name in _all_names(data_dir):
        try:
            spec = get_spec(name)
            here = [dataset_status(name, data_dir)]
            here += [dataset_status(name, data_dir, size) for size in prepared_sizes(spec, root)]
        except DataError as exc:
            if name not in folders:
                raise
            here = [_unreadable_folder(name, folders[name], exc)]
        rows += here
    return rows


@data_app.command("list")
def list_cmd(data_dir: DataDirOpt = None, json_out: JsonOpt = False) -> None:
    """Datasets: prepared or not, real or procedural, size on disk, location."""
    from bvae_tui.datasets.loader import data_root_error
    from bvae_tui.datasets.prepare import find_real_dsprites
    from bvae_tui.datasets.registry import data_root

    root = data_root(data_dir)
    err = data_root_error(root)
    if err is not None:
        raise err
    rows = _statuses(data_dir)
    real = find_real_dsprites(root)
    for r in rows:
        r["real_file"] = str(real) if r["name"] == "dsprites" and real else None
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    notes: list[str] = []

    def mark(note: str) -> str:
        if note not in notes:
            notes.append(note)
        return "*" * (notes.index(note) + 1)

    cells = []
    for r in rows:
        source = r["source"] or "-"
        if r.get("problem"):
            source += mark(r["problem"])
        elif r.get("stale"):
            source += mark(f"folder changed since it was prepared; {r['fix']} rebuilds it")
        elif r["real_file"] and r["source"] != "real":
            source += mark("real dSprites file present; bvae data prepare dsprites uses it")
        loc = Path(r["location"])
        size = r.get("image_size", 64)
        shown = r["name"] if size == 64 else f"{r['name']} ({size}px)"
        cells.append((shown, "yes" if r["prepared"] else "no", source,
                      f"{r['count']:,}" if r["count"] is not None else "-",
                      human_bytes(r["size_bytes"]) if r["prepared"] else "-",
                      f"{loc.name}/" if loc.parent == root else str(loc)))
    out = console()
    cols = ("name", "prepared", "source", "images", "size", "location")
    widths = [max(len(col), *(len(c[i]) for c in cells)) for i, col in enumerate(cols)]
    # The name column never shrinks below its (capped) width; long names and locations fold.
    # The location column takes what is left, so the table fits the terminal.
    fixed = sum(widths[1:5]) + 3 * len(cols) + 1  # the short columns, padding and borders
    widths[0] = min(widths[0], 24, max(len("dsprites-mini"), out.width - fixed - 12))
    loc_width = max(10, out.width - fixed - widths[0])
    table = Table(title=f"datasets in {root}", title_justify="left")
    for col in cols:
        table.add_column(col, justify="right" if col in ("images", "size") else "left",
                         overflow="fold", no_wrap=col not in ("name", "location"),
                         min_width=widths[0] if col == "name" else None,
                         max_width=widths[0] if col == "name" else
                         loc_width if col == "location" else None)
    for c in cells:
        table.add_row(*c)
    out.print(table)
    for i, note in enumerate(notes):
        out.print(f"{'*' * (i + 1)} {note}", soft_wrap=True, highlight=False, markup=False)


@data_app.command("prepare")
def prepare_cmd(
    name: NameArg,
    data_dir: DataDirOpt = None,
    force: Annotated[bool, typer.Option("--force", help="rebuild even if already prepared")]
    = False,
    download: Annotated[bool | None, typer.Option(
        "--download/--no-download",
        help="fetch missing source files first (default: yes for the data sets that exist only "
             "as downloads: celeba, chairs, shapes3d, smallnorb, cars3d, mpi3d-*; no for "
             "dsprites and its variants, whose procedural set needs no download)",
        show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display")] = False,
    json_out: JsonOpt = False,
    image_size: ImageSizeOpt = 64,
) -> None:
    """Prepare a dataset into the cache (download or generate as needed)."""
    from bvae_tui.datasets.loader import dataset_status
    from bvae_tui.datasets.prepare import find_real_dsprites, prepare
    from bvae_tui.datasets.registry import data_root, get_spec

    spec = get_spec(name)
    if download is None:
        download = spec.name in ("celeba", "chairs", "shapes3d", "smallnorb", "cars3d",
                                 "mpi3d-toy", "mpi3d-realistic", "mpi3d-real")
    before = dataset_status(name, data_dir, image_size)  # a size it refuses: one line here
    rebuild = before["stale"] and not before["problem"] and not force
    if rebuild and not json_out:
        console().print(f"{spec.name}: folder changed since it was prepared: rebuilding",
                        soft_wrap=True)
    t0 = time.perf_counter()
    with progress_display(spec.name, quiet or json_out) as cb:
        ds = prepare(name, data_dir, progress=cb, force=force, download=download,
                     image_size=image_size)
    seconds = time.perf_counter() - t0
    status = dataset_status(name, data_dir, image_size)
    if json_out:
        print_json({**status, "seconds": round(seconds, 2),
                    "already_prepared": before["prepared"] and before["source"] == ds.source
                    and not force and not rebuild, "rebuilt_changed_folder": rebuild,
                    "warnings": list(ds.meta.get("warnings") or [])})
        return
    out = console()
    if before["prepared"] and not force and not rebuild and before["source"] == ds.source:
        say = f"{spec.name}: already prepared ({ds.source}, {ds.n:,} images) in " \
              f"{status['location']}"
    else:
        say = f"prepared {spec.name}: {ds.n:,} images, {human_bytes(status['size_bytes'])} " \
              f"in {status['location']} ({seconds:.1f} s)"
    out.print(say, soft_wrap=True)
    if ds.source == "procedural" and spec.name == "dsprites":
        out.print(f"source: procedural (no {Path(spec.url or '').name} in "
                  f"{data_root(data_dir)}; `bvae data download dsprites` fetches the real file)",
                  soft_wrap=True)
    elif ds.source == "real":
        out.print(f"source: real ({find_real_dsprites(data_root(data_dir))})", soft_wrap=True)
    elif ds.meta.get("skipped"):
        out.print(f"skipped {ds.meta['skipped']} unreadable file(s)", soft_wrap=True)
    if ds.meta.get("factors_file"):  # a folder with factors.csv: what the metrics will see
        from bvae_tui.safe_text import as_text

        shown = ", ".join(f"{n} {s}" for n, s in
                          zip(ds.factor_names, ds.factor_sizes, strict=True))
        out.print(as_text(f"factors from {ds.meta['factors_file']}: {shown}"), soft_wrap=True)
        for warning in ds.meta.get("warnings") or []:
            out.print(as_text(f"warning: {warning}"), soft_wrap=True)


@data_app.command("download")
def download_cmd(
    name: NameArg,
    data_dir: DataDirOpt = None,
    url: Annotated[str | None, typer.Option(
        "--url", help="download from here instead (a mirror; or set BVAE_<NAME>_URL)",
        show_default=False)] = None,
    no_prepare: Annotated[bool, typer.Option(
        "--no-prepare", help="only download; do not prepare the cache")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display")] = False,
) -> None:
    """Download a dataset's source file (resumable, checksum-verified), then prepare it."""
    from bvae_tui.datasets.download import download_dataset
    from bvae_tui.datasets.prepare import prepare
    from bvae_tui.datasets.registry import get_spec

    spec = get_spec(name)
    with progress_display(spec.name, quiet) as cb:
        path = download_dataset(name, data_dir, progress=cb, url=url)
    out = console()
    out.print(f"{spec.name}: {path} ({human_bytes(path.stat().st_size)})", soft_wrap=True)
    if no_prepare:
        return
    with progress_display(spec.name, quiet) as cb:
        ds = prepare(name, data_dir, progress=cb)
    out.print(f"prepared {spec.name}: {ds.n:,} images, source {ds.source}", soft_wrap=True)


@data_app.command("export")
def export_cmd(
    name: NameArg,
    output: Annotated[Path, typer.Argument(help="the .npz file to write", show_default=False)],
    fmt: Annotated[str, typer.Option("--format", help="output format (npz: the original "
                                     "dSprites file's keys and dtypes)")] = "npz",
    compress: Annotated[bool, typer.Option("--compress/--no-compress",
                                           help="deflate the npz like the original")] = True,
    data_dir: DataDirOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display")] = False,
) -> None:
    """Write a dSprites-grid dataset in the original npz format, for other tools."""
    from bvae_tui.datasets.errors import DataError
    from bvae_tui.datasets.npz import export_npz
    from bvae_tui.datasets.prepare import open_dataset

    if fmt != "npz":
        raise DataError(f"unknown export format '{fmt}'; the only one is npz")
    ds = open_dataset(name, data_dir)
    with progress_display(ds.name, quiet) as cb:
        path = export_npz(ds, output, compress=compress, progress=cb)
    console().print(f"wrote {path} ({ds.n:,} images, source {ds.source}, "
                    f"{human_bytes(path.stat().st_size)})", soft_wrap=True)
