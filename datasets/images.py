"""Photo datasets (CelebA, 3D Chairs, image folders) decoded once into 64x64 RGB uint8.

CelebA and folders are centre-cropped to a square before resizing (faces are not squashed);
3D Chairs renders are square already and are only resized (:mod:`.decode`). Decoding runs in a
thread pool (Pillow releases the GIL while it decodes and resizes); archives are read sequentially
in the main thread and their bytes handed to the pool. Unreadable files are skipped and counted.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bvae_tui.datasets import cache
from bvae_tui.datasets.download import download_dataset
from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.registry import IMAGE_SIZE, DatasetSpec

Progress = Callable[[str, int, "int | None"], None]
EXTENSIONS = (".jpg", ".jpeg", ".png")
_BATCH = 256


# --- sources: each yields (label, bytes-or-path) items in a stable order ------------------------

def _folder_items(folder: Path) -> tuple[list[Path], int]:
    """Image files under ``folder`` (recursive, sorted) and the number of other files."""
    images, others = [], 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for f in sorted(filenames):
            if f.startswith("."):
                continue
            if f.lower().endswith(EXTENSIONS):
                images.append(Path(dirpath) / f)
            else:
                others += 1
    return images, others


def folder_fingerprint(folder: Path) -> dict | None:
    """A cheap fingerprint of the image files under ``folder`` (no decoding): their count and
    a sha1 of the sorted (relative path, size, mtime_ns). None when ``folder`` is not a folder.

    Walks like :func:`_folder_items` (hidden files skipped, symlinked folders not entered).
    """
    if not folder.is_dir():
        return None
    entries: list[tuple[str, int, int]] = []
    stack = [folder]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                try:
                    is_dir = e.is_dir()
                except OSError:
                    is_dir = False
                if is_dir:
                    if not e.is_symlink():
                        stack.append(Path(e.path))
                    continue
                if e.name.startswith(".") or not e.name.lower().endswith(EXTENSIONS):
                    continue
                try:
                    st = e.stat()
                    size, mtime = st.st_size, st.st_mtime_ns
                except OSError:
                    size, mtime = -1, -1
                entries.append((os.path.relpath(e.path, folder), size, mtime))
    entries.sort()
    sha1 = hashlib.sha1()
    for rel, size, mtime in entries:
        sha1.update(f"{rel}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
    return {"count": len(entries), "sha1": sha1.hexdigest()}


def _zip_items(path: Path) -> tuple[list[str], Callable[[str], bytes]]:
    try:
        zf = zipfile.ZipFile(path)
        names = sorted(n for n in zf.namelist() if n.lower().endswith(EXTENSIONS)
                       and not n.split("/")[-1].startswith("."))
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path} is not a readable zip ({exc}); delete it and download it "
                        "again") from None
    return names, zf.read


def _tar_stream(path: Path, want: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    try:
        with tarfile.open(path) as tf:
            for member in tf:
                if member.isfile() and want(member.name):
                    fh = tf.extractfile(member)
                    if fh is not None:
                        yield member.name, fh.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable tar ({exc}); delete it and download it "
                        "again") from None


def find_source(spec: DatasetSpec, root: Path) -> Path | None:
    """Where the files of ``spec`` are, if present."""
    if spec.folder is not None:
        return spec.folder
    if spec.name == "celeba":
        candidates = [root / "img_align_celeba", root / "celeba" / "img_align_celeba",
                      root / "celeba.zip", root / "img_align_celeba.zip"]
    elif spec.name == "chairs":
        candidates = [root / "rendered_chairs", root / "rendered_chairs.tar"]
    else:
        return None
    for c in candidates:
        if c.is_dir() or (c.is_file() and c.stat().st_size > 0):
            return c
    return None


def _is_chair_render(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return len(parts) >= 2 and parts[-2] == "renders" and name.lower().endswith(EXTENSIONS)


# --- prepare -------------------------------------------------------------------------------------

def prepare_images(spec: DatasetSpec, root: Path, progress: Progress | None, force: bool,
                   download: bool = False) -> None:
    """Decode the files of ``spec`` into the cache."""
    src = find_source(spec, root)
    if src is None and download and spec.url:
        download_dataset(spec.name, root, progress=progress)
        src = find_source(spec, root)
    if src is None:
        raise DataError(f"{spec.name} is not in {root}: {spec.source_hint} {root}, or run: "
                        f"bvae data download {spec.name}")
    crop = spec.name != "chairs"
    total: int | None
    skipped_other = 0
    fingerprint = None
    if spec.folder is not None or src.is_dir():
        if not src.is_dir():
            what = "is not a folder" if src.exists() else "does not exist"
            raise DataError(f"{src} {what}; give a folder of jpg/png images")
        if spec.folder is not None:
            # Taken before decoding: a file changed meanwhile makes the next open rebuild.
            fingerprint = folder_fingerprint(src)
        files, skipped_other = _folder_items(src)
        if spec.name == "chairs":
            files = [f for f in files if _is_chair_render(str(f.relative_to(src)))]
        if not files:
            raise DataError(f"no jpg/png images under {src}"
                            + (f" ({skipped_other} other files ignored)" if skipped_other else "")
                            + "; point it at a folder of images")
        items: Iterator = iter(files)
        total = len(files)
    elif src.suffix == ".zip":
        names, read = _zip_items(src)
        if not names:
            raise DataError(f"no jpg/png images in {src}; delete it and download it again")
        items = (read(n) for n in names)
        total = len(names)
    else:  # tar: one pass, count unknown up front
        items = (data for _, data in _tar_stream(src, _is_chair_render))
        total = None
    # Here, not at the top: decode imports Pillow, and `bvae data list` and the TUI import this
    # module for folder fingerprints and never decode.
    from bvae_tui.datasets.decode import decode

    with cache.building(root, spec.cache_name, force) as tmp:
        writer = cache.NpyWriter(tmp / cache.IMAGES, (3, IMAGE_SIZE, IMAGE_SIZE))
        seen = bad = 0
        try:
            with ThreadPoolExecutor(max_workers=_workers()) as pool:
                for batch in _batches(items, _BATCH):
                    decoded = list(pool.map(lambda d: decode(d, crop), batch))
                    good = [d for d in decoded if d is not None]
                    bad += len(decoded) - len(good)
                    seen += len(decoded)
                    if good:
                        writer.append(np.stack(good))
                    if progress:
                        progress("decode", seen, total)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        if writer.rows == 0:
            raise DataError(f"none of the {seen} image files in {src} could be read; "
                            "check the files or point at another folder")
        cache.write_meta(tmp, {
            "name": spec.name, "title": spec.title, "source": "files", "origin": str(src),
            "count": writer.rows, "skipped": bad, "ignored_non_images": skipped_other,
            "channels": 3, "binary": False, "packed": False,
            "checksum": {"images_sha1": writer.sha1.hexdigest()},
            "factor_names": [], "factor_sizes": [],
            **({"fingerprint": fingerprint} if fingerprint is not None else {}),
        })


def _batches(items: Iterator, size: int) -> Iterator[list]:
    batch: list = []
    for it in items:
        batch.append(it)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _workers() -> int:
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, n or 1))
