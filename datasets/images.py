"""Photo datasets (CelebA, 3D Chairs, image folders) decoded once into 64x64 RGB uint8.

CelebA and folders are centre-cropped to a square before resizing (faces are not squashed);
3D Chairs renders are square already and are only resized (:mod:`.decode`). Decoding runs in a
thread pool (Pillow releases the GIL while it decodes and resizes); archives are read sequentially
in the main thread and their bytes handed to the pool.

Hostile or damaged input costs a counted skip, never unbounded memory or a hang: every file and
archive entry is read in chunks up to :data:`MAX_ENTRY_BYTES`, an archive entry that inflates
more than :data:`MAX_RATIO` times is not read at all, a zip entry with a bad CRC is skipped, a
tar is read only uncompressed, and in a folder only regular files are opened (symlinks to regular
files are read; FIFOs, devices and sockets are not). meta.json's ``skipped_reasons`` counts the
skips by reason; an archive with more than half its images skipped fails in one line.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bvae_tui.datasets import cache, folder_factors
from bvae_tui.datasets.download import download_dataset
from bvae_tui.datasets.errors import DataError
from bvae_tui.datasets.grid_cache import cache_bytes, check_disk
from bvae_tui.datasets.registry import IMAGE_SIZE, DatasetSpec

Progress = Callable[[str, int, "int | None"], None]
EXTENSIONS = (".jpg", ".jpeg", ".png")
_BATCH = 256

# Caps (module constants so that tests can lower them). A 64x64 tile comes from a photo of a
# few MB; 64 MiB is far above any real CelebA, 3D Chairs or camera image.
MAX_ENTRY_BYTES = 64 << 20
MAX_RATIO = 100  # JPEG and PNG barely deflate further: 100:1 is a bomb, not an image
_RATIO_FLOOR = 1 << 20  # below 1 MiB a high ratio is harmless (tiny uniform images)
_BATCH_BYTES = 256 << 20  # encoded bytes waiting for the pool at once, whatever their count
_READ_CHUNK = 1 << 20
_MAX_SKIPPED_FRACTION = 0.5  # of an archive's images; beyond it the archive is damaged

# Why an image was skipped (meta.json ``skipped_reasons`` keys) and how the error line says it.
DAMAGED, TOO_BIG, UNDECODABLE = "damaged", "too_big", "undecodable"
NOT_A_FILE, UNREADABLE = "not_a_file", "unreadable"
_SAID = {DAMAGED: "damaged", TOO_BIG: "too big", UNDECODABLE: "not decodable",
         NOT_A_FILE: "not a regular file", UNREADABLE: "unreadable"}


# --- sources: per image its bytes, its path, or why it is skipped, in a stable order -----------

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


def folder_images(folder: Path) -> list[Path]:
    """The image files a ``folder:PATH`` dataset is prepared from, in cache order."""
    return _folder_items(folder)[0]


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
    entries += _factors_entry(folder)  # the factors are part of the data: a new csv rebuilds
    entries.sort()
    sha1 = hashlib.sha1()
    for rel, size, mtime in entries:
        sha1.update(f"{rel}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
    return {"count": len(entries), "sha1": sha1.hexdigest()}


def _factors_entry(folder: Path) -> list[tuple[str, int, int]]:
    """factors.csv's (name, size, mtime_ns) when the folder has one (nothing otherwise, so the
    fingerprint of a folder without factors is what it always was)."""
    try:
        st = os.stat(folder / folder_factors.FACTORS_FILE)
    except OSError:
        return []
    return [(folder_factors.FACTORS_FILE, st.st_size, st.st_mtime_ns)]


def _read_capped(fh, cap: int) -> bytes | str:
    """All of ``fh`` in chunks, or TOO_BIG as soon as it passes ``cap`` bytes (what a header
    declared is not trusted: the bytes are counted)."""
    chunks, n = [], 0
    while block := fh.read(min(_READ_CHUNK, cap + 1 - n)):
        n += len(block)
        if n > cap:
            return TOO_BIG
        chunks.append(block)
    return b"".join(chunks)


def _entry_cap(size: int, packed: int) -> int | None:
    """The most bytes an archive entry declared as ``size`` (``packed`` compressed) may inflate
    to, or None when its declared sizes already break the caps."""
    if size > MAX_ENTRY_BYTES or (size > _RATIO_FLOOR and size > MAX_RATIO * packed):
        return None
    return min(MAX_ENTRY_BYTES, max(_RATIO_FLOOR, MAX_RATIO * packed))


def _zip_infos(path: Path) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """The zip opened, and its image entries by name."""
    try:
        zf = zipfile.ZipFile(path)
        infos = sorted((i for i in zf.infolist() if i.filename.lower().endswith(EXTENSIONS)
                        and not i.filename.split("/")[-1].startswith(".")),
                       key=lambda i: i.filename)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable zip ({exc}); delete it and download it "
                        "again") from None
    return zf, infos


def _zip_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes | str:
    """One entry's bytes, or why it is skipped: too big or too compressible (never read), or
    damaged (bad CRC or header, unsupported or encrypted)."""
    cap = _entry_cap(info.file_size, info.compress_size)
    if cap is None:
        return TOO_BIG
    try:
        with zf.open(info) as fh:
            return _read_capped(fh, cap)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError,
            NotImplementedError, RuntimeError):  # RuntimeError: encrypted
        return DAMAGED


def _zip_stream(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> Iterator[bytes | str]:
    with zf:
        for info in infos:
            yield _zip_entry(zf, info)


# A tar's compression, by its magic bytes -> (name, the command that undoes it).
_COMPRESSION = ((b"\x1f\x8b", "gzip", "gunzip -c"), (b"BZh", "bzip2", "bunzip2 -c"),
                (b"\xfd7zXZ\x00", "xz", "unxz -c"), (b"\x28\xb5\x2f\xfd", "zstd", "unzstd -c"))


def _refuse_compressed(path: Path) -> None:
    """A compressed "tar" inflates without bound on the fly: refused in one line that says how
    to decompress it (the published rendered_chairs.tar is a plain tar)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror}); check its permissions") from None
    for magic, kind, tool in _COMPRESSION:
        if head.startswith(magic):
            raise DataError(f"{path} is {kind}-compressed; only a plain tar is read: run "
                            f"`{tool} {path} > {path}.plain && mv {path}.plain {path}`, or "
                            "delete it and download it again")


def _tar_stream(path: Path, want: Callable[[str], bool]) -> Iterator[bytes | str]:
    """The bytes of each wanted member (or why it is skipped), one pass, uncompressed only
    (:func:`_refuse_compressed` has said why not first)."""
    try:
        with tarfile.open(path, mode="r:") as tf:
            for member in tf:
                if not (member.isfile() and want(member.name)):
                    continue
                if member.size > MAX_ENTRY_BYTES:
                    yield TOO_BIG
                    continue
                fh = tf.extractfile(member)
                yield DAMAGED if fh is None else _read_capped(fh, MAX_ENTRY_BYTES)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable tar ({exc}); delete it and download it "
                        "again") from None


def _read_regular(path: Path) -> bytes | str:
    """A folder's file, read only if it is a regular file (or a symlink to one): a FIFO would
    block ``open`` forever and a device could stream without end. Opened non-blocking and
    checked again on the descriptor, so a file swapped for a FIFO meanwhile cannot block."""
    try:
        st = os.stat(path)
    except OSError:
        return UNREADABLE
    if not stat.S_ISREG(st.st_mode):
        return NOT_A_FILE
    if st.st_size > MAX_ENTRY_BYTES:
        return TOO_BIG
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return UNREADABLE
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return NOT_A_FILE
        try:
            return _read_capped(fh, MAX_ENTRY_BYTES)
        except OSError:
            return UNREADABLE


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

@dataclass
class _Plan:
    """What to decode: ``items`` (bytes, a path, or a skip reason each), how many when known,
    and what meta.json says about the source."""

    items: Iterable
    total: int | None
    archive: bool  # a downloaded file: mostly damaged means delete and download again
    ignored: int = 0  # non-image files in a folder
    fingerprint: dict | None = None
    factors: folder_factors.FactorTable | None = None  # a folder's factors.csv, checked


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
    plan = _plan(spec, src)
    crop = spec.name != "chairs"
    side = spec.image_size  # --image-size: each size is its own cache
    if plan.total is not None:  # CelebA at 128 is 10 GB: say so before decoding, not at the end
        check_disk(cache.ensure_root(root), cache_bytes(plan.total, 3 * side * side, 0),
                   spec.cache_name)
    with cache.building(root, spec.cache_name, force) as tmp:
        writer = cache.NpyWriter(tmp / cache.IMAGES, (3, side, side))
        try:
            kept: list[bool] = []
            skipped, seen = _decode_into(writer, plan, crop, progress, side, kept)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        _check_usable(src, plan, writer.rows, skipped, seen)
        cache.write_meta(tmp, {
            "name": spec.name, "title": spec.title, "source": "files", "origin": str(src),
            "count": writer.rows, "skipped": sum(skipped.values()),
            "skipped_reasons": dict(sorted(skipped.items())), "ignored_non_images": plan.ignored,
            "channels": 3, "binary": False, "packed": False, "image_size": side,
            "checksum": {"images_sha1": writer.sha1.hexdigest()},
            "factor_names": [], "factor_sizes": [],
            **(folder_factors.write_factors(tmp, plan.factors, kept, src)
               if plan.factors is not None else {}),
            **({"fingerprint": plan.fingerprint} if plan.fingerprint is not None else {}),
        })


def _plan(spec: DatasetSpec, src: Path) -> _Plan:
    if spec.folder is not None or src.is_dir():
        return _folder_plan(spec, src)
    if src.suffix == ".zip":
        zf, infos = _zip_infos(src)
        if not infos:
            zf.close()
            raise DataError(f"no jpg/png images in {src}; delete it and download it again")
        return _Plan(_zip_stream(zf, infos), len(infos), archive=True)
    # tar: one pass, count unknown up front; a compressed one refused before any cache work
    _refuse_compressed(src)
    return _Plan(_tar_stream(src, _is_chair_render), None, archive=True)


def _folder_plan(spec: DatasetSpec, src: Path) -> _Plan:
    if not src.is_dir():
        what = "is not a folder" if src.exists() else "does not exist"
        raise DataError(f"{src} {what}; give a folder of jpg/png images")
    # Taken before decoding: a file changed meanwhile makes the next open rebuild.
    fingerprint = folder_fingerprint(src) if spec.folder is not None else None
    files, ignored = _folder_items(src)
    if spec.name == "chairs":
        files = [f for f in files if _is_chair_render(str(f.relative_to(src)))]
    if not files:
        raise DataError(f"no jpg/png images under {src}"
                        + (f" ({ignored} other files ignored)" if ignored else "")
                        + "; point it at a folder of images")
    # Checked before decoding: a bad factors.csv is one line, not minutes of work lost.
    factors = (folder_factors.read_table(src, files)
               if spec.folder is not None and folder_factors.has_factors_file(src) else None)
    return _Plan(files, len(files), archive=False, ignored=ignored, fingerprint=fingerprint,
                 factors=factors)


def _decode_into(writer: cache.NpyWriter, plan: _Plan, crop: bool,
                 progress: Progress | None, side: int = IMAGE_SIZE,
                 kept: list[bool] | None = None) -> tuple[Counter, int]:
    """Decode ``plan.items`` in a thread pool into ``writer``; (skips by reason, items seen)."""
    # Here, not at the top: decode imports Pillow, and `bvae data list` and the TUI import this
    # module for folder fingerprints and never decode.
    from bvae_tui.datasets.decode import decode

    def tile(item: bytes | Path | str) -> np.ndarray | str:
        data = _read_regular(item) if isinstance(item, Path) else item
        if isinstance(data, str):  # a skip reason
            return data
        out = decode(data, crop, side)
        return UNDECODABLE if out is None else out

    skipped: Counter = Counter()
    seen = 0
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        for batch in _batches(plan.items, _BATCH, _BATCH_BYTES):
            results = list(pool.map(tile, batch))
            if kept is not None:  # which images made it: their factor rows follow them
                kept.extend(not isinstance(r, str) for r in results)
            good = [r for r in results if not isinstance(r, str)]
            skipped.update(r for r in results if isinstance(r, str))
            seen += len(results)
            if good:
                writer.append(np.stack(good))
            if progress:
                progress("decode", seen, plan.total)
    return skipped, seen


def _check_usable(src: Path, plan: _Plan, rows: int, skipped: Counter, seen: int) -> None:
    """Fail in one line when nothing could be used, or when most of an archive was skipped
    (a damaged download: a dataset of its remains would be silently different)."""
    lost = sum(skipped.values())
    why = ", ".join(f"{n} {_SAID.get(reason, reason)}" for reason, n in sorted(skipped.items()))
    if plan.archive and (rows == 0 or lost > _MAX_SKIPPED_FRACTION * seen):
        raise DataError(f"{lost} of {seen} images in {src} were skipped ({why}); the file looks "
                        "damaged: delete it and download it again")
    if rows == 0:
        raise DataError(f"none of the {seen} image files in {src} could be read ({why}); "
                        "check the files or point at another folder")


def _batches(items: Iterable, size: int, max_bytes: int) -> Iterator[list]:
    """Lists of at most ``size`` items holding at most about ``max_bytes`` of bytes items."""
    batch: list = []
    held = 0
    for it in items:
        batch.append(it)
        held += len(it) if isinstance(it, bytes) else 0
        if len(batch) == size or held >= max_bytes:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def _workers() -> int:
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, n or 1))
