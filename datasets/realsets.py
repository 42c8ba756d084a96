"""SmallNORB, Cars3D and MPI3D: finding and preparing their published files.

The loader and ``prepare`` hook in here by name (downloads are datasets.download's, from the
files listed in datasets.realsets_files); the readers themselves (:mod:`.smallnorb`,
:mod:`.cars3d`, :mod:`.mpi3d`) import Pillow and SciPy only when they prepare, so `bvae data
list` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.realsets_files import MPI3D_FILES, SOURCES
from bvae_tui.datasets.registry import DatasetSpec

Progress = Callable[[str, int, "int | None"], None]

NAMES = tuple(SOURCES)


def find_source(spec: DatasetSpec, root: Path) -> Path | None:
    """The file (SmallNORB: the folder of its six files) that preparing reads, or None."""
    if spec.name == "smallnorb":
        from bvae_tui.datasets import smallnorb

        return root if smallnorb.find_sources(root) is not None else None
    if spec.name == "cars3d":
        from bvae_tui.datasets import cars3d

        return cars3d.find_source(root)
    from bvae_tui.datasets import mpi3d

    return mpi3d.find_source(spec.name, root)


def prepare_realset(spec: DatasetSpec, root: Path, progress: Progress | None,
                    force: bool) -> None:
    """Prepare ``spec`` from its files in ``root`` (``prepare`` downloads them first if asked;
    the downloads themselves are datasets.download's, from datasets.realsets_files)."""
    if find_source(spec, root) is None:
        raise DataError(f"{spec.name} is not in {root}: {spec.source_hint} {root}, or run: "
                        f"bvae data download {spec.name}")
    if spec.name == "smallnorb":
        from bvae_tui.datasets import smallnorb

        files = smallnorb.find_sources(root)
        assert files is not None
        smallnorb.prepare_smallnorb(spec, root, files, progress, force)
    elif spec.name == "cars3d":
        from bvae_tui.datasets import cars3d

        cars3d.prepare_cars3d(spec, root, root / SOURCES["cars3d"][0].name, progress, force)
    elif spec.name in MPI3D_FILES:
        from bvae_tui.datasets import mpi3d

        mpi3d.prepare_mpi3d(spec, root, root / MPI3D_FILES[spec.name][0].name, progress,
                            force)
    else:  # pragma: no cover - NAMES is SOURCES' keys
        raise DataError(f"dataset '{spec.name}' is not one of {', '.join(NAMES)}")
