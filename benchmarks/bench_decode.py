"""Photo decoding benchmark (not a test): Pillow (the project's path) against torchvision for the
CelebA / 3D Chairs / folder images, decode alone and decode + centre crop + resize to 64x64.

    .venv/bin/python benchmarks/bench_decode.py [--jpegs 3000] [--pngs 600] [--rounds 3] [--json]

Writes ``--jpegs`` CelebA-sized JPEGs (178x218, quality 90) and ``--pngs`` 3D-Chairs-sized PNGs
(600x600, a smooth object on white) into a temporary folder, made from smooth noise (which
compresses like a photo, unlike flat colour or white noise), and reads their bytes back into
memory, so disk reads are not timed. Every variant takes its turn on each chunk of images (in a
rotating order), so changes in the machine's load hit all variants alike; each variant's time is
divided by Pillow's over the same round (``time/pil``, < 1 is faster) and CPU seconds likewise
(``cpu/pil``); figures are medians over rounds.

Variants (``decode`` is ``bvae_tui.datasets.decode``):
  pil              decode.decode: Pillow decode, centre crop, Pillow LANCZOS (the project's path)
  tv+lanczos       torchvision.io.decode_image, the same crop, Pillow LANCZOS
  tv+tv-bicubic    decode_image, crop, transforms.v2.functional.resize(bicubic, antialias=True)
  pil+tv-bicubic   Pillow decode (open_rgb), crop, v2 resize(bicubic, antialias=True)
  pil+tv-bilinear  the same with bilinear (torchvision's default interpolation)
  pil+pil-bicubic  Pillow decode, crop, Pillow BICUBIC (the filter change without torchvision)
  decode-pil       open_rgb only;   decode-tv   decode_image only

Timed with one thread (per-image cost) and through a pool of ``images._workers()`` threads as
``prepare`` decodes. Then every variant's 64x64 output is compared with ``pil``'s (largest and
mean absolute difference, 0..255 levels), and the edge cases (greyscale, CMYK, palette, RGBA,
16-bit, corrupt) are decoded by both decoders and compared.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from bvae_tui.datasets import images
from bvae_tui.datasets.decode import centre_square, decode, open_rgb
from bvae_tui.datasets.registry import IMAGE_SIZE

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
Decoder = Callable[[bytes], np.ndarray]  # bytes -> (3, H, W) uint8; raises on a bad file
Variant = Callable[[bytes, bool], "np.ndarray | None"]


def make_images(folder: Path, jpegs: int, pngs: int, seed: int = 0) -> dict[str, list[bytes]]:
    """Write the test images into ``folder`` and return their bytes by set."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[:600, :600]
    for i in range(jpegs):
        small = rng.randint(0, 255, (28, 23, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((178, 218), Image.Resampling.BICUBIC)
        img.save(folder / f"face{i:05d}.jpg", quality=90)
    for i in range(pngs):  # an object (smooth noise in a disc) on a white background
        small = rng.randint(0, 255, (12, 12, 3), dtype=np.uint8)
        obj = np.asarray(Image.fromarray(small).resize((600, 600), Image.Resampling.BICUBIC))
        cy, cx, r = rng.randint(200, 400), rng.randint(200, 400), rng.randint(100, 200)
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        Image.fromarray(np.where(inside[..., None], obj, np.uint8(255))).save(
            folder / f"chair{i:05d}.png")
    return {"jpeg 178x218": [p.read_bytes() for p in sorted(folder.glob("face*.jpg"))],
            "png 600x600": [p.read_bytes() for p in sorted(folder.glob("chair*.png"))]}


# --- decoders and resizers -----------------------------------------------------------------------

def pil_rgb(data: bytes) -> np.ndarray:
    return np.asarray(open_rgb(data)).transpose(2, 0, 1)


def tv_rgb(data: bytes) -> np.ndarray:
    """decode_image made to match open_rgb: alpha composited on white, 16 bits scaled.

    Its RGB_ALPHA mode is used only for PNGs that carry alpha (colour type 4 or 6, or a tRNS
    chunk): torchvision 0.29 returns misaligned pixels for palette PNGs without tRNS there.
    """
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    alpha = data[:8] == PNG_MAGIC and (data[25] in (4, 6) or b"tRNS" in data[:data.find(b"IDAT")])
    with warnings.catch_warnings():  # its deprecation notice (see RESULTS.md), once per call
        warnings.simplefilter("ignore", DeprecationWarning)
        img = decode_image(raw, mode=ImageReadMode.RGB_ALPHA if alpha else ImageReadMode.RGB)
    if img.dtype != torch.uint8:  # 16-bit PNG
        img = ((img.to(torch.int32) + 128) // 257).to(torch.uint8)
    arr = img.numpy()
    if arr.shape[0] == 4:  # Pillow's alpha_composite over opaque white, rounded alike (exact)
        a = arr[3].astype(np.int32)
        arr = ((arr[:3] * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)
    return arr


def _square(img: np.ndarray, crop: bool) -> np.ndarray:
    h, w = img.shape[-2:]
    if not crop or w == h:
        return img
    left, top, right, bottom = centre_square(w, h)
    return img[:, top:bottom, left:right]


def pil_resize(resample: Image.Resampling) -> Callable[[np.ndarray], np.ndarray]:
    def run(img: np.ndarray) -> np.ndarray:
        pil = Image.fromarray(np.ascontiguousarray(img.transpose(1, 2, 0)))
        return np.asarray(pil.resize((IMAGE_SIZE, IMAGE_SIZE), resample)).transpose(2, 0, 1)
    return run


def tv_resize(mode: InterpolationMode) -> Callable[[np.ndarray], np.ndarray]:
    def run(img: np.ndarray) -> np.ndarray:
        return F.resize(torch.from_numpy(np.ascontiguousarray(img)), [IMAGE_SIZE, IMAGE_SIZE],
                        interpolation=mode, antialias=True).numpy()
    return run


def pipeline(decoder: Decoder, resize: Callable[[np.ndarray], np.ndarray] | None) -> Variant:
    def run(data: bytes, crop: bool) -> np.ndarray | None:
        try:
            img = decoder(data)
        except (OSError, ValueError, SyntaxError, RuntimeError):
            return None  # PIL.UnidentifiedImageError is an OSError; torchvision raises Runtime
        return img if resize is None else resize(_square(img, crop))
    return run


def pil_bicubic(data: bytes, crop: bool) -> np.ndarray | None:
    """decode() with Pillow's BICUBIC filter in place of LANCZOS (all in Pillow)."""
    try:
        img = open_rgb(data)
    except (OSError, ValueError, SyntaxError):
        return None
    if crop and img.size[0] != img.size[1]:
        img = img.crop(centre_square(*img.size))
    img = img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
    return np.asarray(img).transpose(2, 0, 1)


VARIANTS: dict[str, Variant] = {
    "pil": decode,
    "tv+lanczos": pipeline(tv_rgb, pil_resize(Image.Resampling.LANCZOS)),
    "tv+tv-bicubic": pipeline(tv_rgb, tv_resize(InterpolationMode.BICUBIC)),
    "pil+tv-bicubic": pipeline(pil_rgb, tv_resize(InterpolationMode.BICUBIC)),
    "pil+tv-bilinear": pipeline(pil_rgb, tv_resize(InterpolationMode.BILINEAR)),
    "pil+pil-bicubic": pil_bicubic,
    "decode-pil": pipeline(pil_rgb, None),
    "decode-tv": pipeline(tv_rgb, None),
}


# --- timing --------------------------------------------------------------------------------------

def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def time_round(items: list[bytes], crop: bool, pool: ThreadPoolExecutor | None
               ) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds per variant over ``items``: the variants take turns on every chunk."""
    chunk = 64 if pool is None else 256  # prepare hands the pool 256 at a time
    wall = dict.fromkeys(VARIANTS, 0.0)
    cpu = dict.fromkeys(VARIANTS, 0.0)
    names = list(VARIANTS)
    for k, start in enumerate(range(0, len(items), chunk)):
        part = items[start:start + chunk]
        for name in names[k % len(names):] + names[:k % len(names)]:
            fn = VARIANTS[name]
            t, c = time.perf_counter(), _cpu()
            if pool is None:
                for d in part:
                    fn(d, crop)
            else:
                list(pool.map(lambda d, fn=fn: fn(d, crop), part))
            wall[name] += time.perf_counter() - t
            cpu[name] += _cpu() - c
    return {name: (wall[name], cpu[name]) for name in names}


def pixel_check(sets: dict[str, tuple[list[bytes], bool]]) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for set_name, (items, crop) in sets.items():
        ref = np.stack([decode(d, crop) for d in items]).astype(np.int16)
        out[set_name] = {}
        for name, fn in VARIANTS.items():
            if name == "pil" or name.startswith("decode"):
                continue
            diff = np.abs(np.stack([fn(d, crop) for d in items]).astype(np.int16) - ref)
            out[set_name][name] = {"max_abs": int(diff.max()), "mean_abs": float(diff.mean()),
                                   "share_over_4": float((diff > 4).mean())}
        # Is torchvision's antialiased bicubic Pillow's BICUBIC?
        tv = np.stack([VARIANTS["pil+tv-bicubic"](d, crop) for d in items]).astype(np.int16)
        pil = np.stack([VARIANTS["pil+pil-bicubic"](d, crop) for d in items]).astype(np.int16)
        diff = np.abs(tv - pil)
        out[set_name]["tv-bicubic vs pil-bicubic"] = {
            "max_abs": int(diff.max()), "mean_abs": float(diff.mean()),
            "share_over_4": float((diff > 4).mean()), "share_differing": float((diff > 0).mean())}
    return out


def edge_cases() -> dict[str, str]:
    """Both decoders on the files a dataset folder may hold: 'same' or what differs."""
    def enc(img: Image.Image, fmt: str, **kw) -> bytes:
        buf = io.BytesIO()
        img.save(buf, format=fmt, **kw)
        return buf.getvalue()

    rng = np.random.RandomState(0)
    rgb = Image.fromarray(rng.randint(0, 255, (28, 23, 3), dtype=np.uint8)).resize(
        (178, 218), Image.Resampling.BICUBIC)
    rgba = np.asarray(rgb.convert("RGBA")).copy()
    rgba[..., 3] = rng.randint(0, 256, rgba.shape[:2])
    grey16 = (np.asarray(rgb.convert("L")).astype(np.uint16) * 257)
    good = enc(rgb, "JPEG")
    flipped = bytearray(good)
    for pos in (2000, 3000):
        flipped[pos] ^= 0xFF
    cases = {
        "greyscale JPEG": enc(rgb.convert("L"), "JPEG"),
        "CMYK JPEG": enc(rgb.convert("CMYK"), "JPEG"),
        "progressive JPEG": enc(rgb, "JPEG", progressive=True),
        "greyscale PNG": enc(rgb.convert("L"), "PNG"),
        "1-bit PNG": enc(rgb.convert("1"), "PNG"),
        "palette PNG": enc(rgb.convert("P"), "PNG"),
        "palette PNG, transparent colour": enc(rgb.convert("P"), "PNG", transparency=0),
        "RGBA PNG": enc(Image.fromarray(rgba, "RGBA"), "PNG"),
        "grey+alpha PNG": enc(Image.fromarray(rgba, "RGBA").convert("LA"), "PNG"),
        "16-bit greyscale PNG": enc(Image.fromarray(grey16), "PNG"),
        "truncated JPEG": good[: len(good) // 2],
        "JPEG with flipped bytes": bytes(flipped),
        "not an image": b"\xff\xd8 garbage",
        "empty file": b"",
    }
    out = {}
    for name, data in cases.items():
        a = VARIANTS["decode-pil"](data, True)
        b = VARIANTS["decode-tv"](data, True)
        if a is None or b is None:
            out[name] = ("both skip" if a is None and b is None
                         else f"only {'Pillow' if a is None else 'torchvision'} skips")
        else:
            diff = int(np.abs(a.astype(np.int16) - b).max()) if a.shape == b.shape else -1
            out[name] = "same pixels" if diff == 0 else f"differ (max {diff})"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jpegs", type=int, default=3000)
    ap.add_argument("--pngs", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print JSON only")
    args = ap.parse_args()
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bvae-bench-decode-") as tmp:
        data = make_images(Path(tmp), args.jpegs, args.pngs)
    made = time.perf_counter() - t
    sets = {"jpeg 178x218": (data["jpeg 178x218"], True), "png 600x600": (data["png 600x600"],
                                                                           False)}
    workers = images._workers()
    for fn in VARIANTS.values():  # first calls load libraries: not timed
        fn(sets["jpeg 178x218"][0][0], True)
    raw: dict[str, dict[str, dict[str, list[float]]]] = {}
    with ThreadPoolExecutor(max_workers=workers) as shared:
        for _ in range(args.rounds):
            for set_name, (items, crop) in sets.items():
                for pool in (None, shared):
                    key = f"{set_name}, {1 if pool is None else workers} thread(s)"
                    row = raw.setdefault(key, {})
                    secs = time_round(items, crop, pool)
                    for name, (wall, cpu) in secs.items():
                        base = secs["decode-pil" if name.startswith("decode") else "pil"]
                        e = row.setdefault(name, {"wall": [], "time": [], "cpu": []})
                        e["wall"].append(wall)
                        e["time"].append(wall / base[0])
                        e["cpu"].append(cpu / base[1])
    result = {
        "machine": {"cpus": len(os.sched_getaffinity(0)), "load_average": os.getloadavg(),
                    "python": sys.version.split()[0], "torch": torch.__version__,
                    "pillow": Image.__version__, "pool_threads": workers,
                    "torch_threads": torch.get_num_threads()},
        "counts": {k: len(v[0]) for k, v in sets.items()}, "make_seconds": made,
        "timings": {key: {name: {"img_per_s": len(sets[key.split(",")[0]][0])
                                 / statistics.median(e["wall"]),
                                 "time_vs_pil": statistics.median(e["time"]),
                                 "cpu_vs_pil": statistics.median(e["cpu"])}
                          for name, e in row.items()} for key, row in raw.items()},
        "pixels": pixel_check(sets),
        "edge_cases": edge_cases(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    m = result["machine"]
    print(f"{m['cpus']} CPUs, load {m['load_average'][0]:.1f}, torch {m['torch']}, Pillow "
          f"{m['pillow']}; images made in {made:.0f} s; medians of {args.rounds} rounds; "
          "x/pil < 1 is faster (decode-* against decode-pil)")
    for key, row in result["timings"].items():
        print(f"\n{key}")
        for name, e in row.items():
            print(f"  {name:16s} {e['img_per_s']:7.0f} img/s   time/pil {e['time_vs_pil']:.2f}"
                  f"   cpu/pil {e['cpu_vs_pil']:.2f}")
    print("\n64x64 output against pil's (0..255 levels):")
    for set_name, row in result["pixels"].items():
        for name, d in row.items():
            print(f"  {set_name:13s} {name:26s} max {d['max_abs']:3d}  mean {d['mean_abs']:.2f}"
                  f"  pixels off by >4: {d['share_over_4'] * 100:.2f}%")
    print("\nedge cases, Pillow (open_rgb) against torchvision (decode_image):")
    for name, what in result["edge_cases"].items():
        print(f"  {name:32s} {what}")


if __name__ == "__main__":
    main()
