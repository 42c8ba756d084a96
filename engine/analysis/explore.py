"""Exploring a trained model by hand: one source image, one code, one latent moved at a time.

The Explore screen and ``bvae explore`` both draw through :class:`Explorer`: it loads a
checkpoint read-only (never the run's lock: the run may be training), encodes and decodes on the
chosen device, and hands numpy arrays to the face. The faces never build tensors.

What it computes:

- :meth:`Explorer.view`: the source image, its reconstruction, the decode of an edited code and
  the traversal row of one latent from that code (the strip a GIF would animate);
- :meth:`Explorer.respond` (the inverse view): step one ground-truth *factor* of the source image
  (the next posX class) and return how each latent's encoder mean moves;
- :meth:`Explorer.index_for`: the dataset index of the image with given factor classes.

Checkpoints are read into memory through :func:`~bvae_tui.engine.runs.files.open_regular` in
one go: the trainer replaces ``last.pt`` by renaming, so the descriptor holds either the old or
the new file whole; a file that still fails to load (cut short, replaced while read) is read
again once, then ``prev.pt`` is used.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bvae_tui.engine.analysis import render
from bvae_tui.engine.analysis.compare_runs import ACTIVE_KL
from bvae_tui.engine.analysis.mi_matrix import MIMatrix
from bvae_tui.engine.errors import ConfigError, RunError
from bvae_tui.engine.runs.files import open_regular, stat_key
from bvae_tui.engine.runs.records import CHECKPOINTS_DIR
from bvae_tui.errors import UserError, brief

if TYPE_CHECKING:
    from bvae_tui.engine.runs.store import Run

LIMIT = 3.0  # values shown on [-LIMIT, +LIMIT], as the traversals
STEPS = 10  # values of the traversal row
SMALL_STEP = 0.25  # what one arrow key moves a latent (shift: LARGE_STEP)
LARGE_STEP = 1.0
KL_SAMPLE = 256  # images the KL ordering is measured on (seeded: the same order every time)
CPU_THREADS = 1  # intra-op threads for the explorer's tiny batches (see open_explorer)
MAX_CHECKPOINT_BYTES = 4 * 2**30  # a z_dim-10 model is megabytes; more is not a checkpoint
# Class names where the dataset's factor has well-known ones (REFERENCE.md: dSprites shapes).
CLASS_NAMES: dict[str, tuple[str, ...]] = {"shape": ("square", "ellipse", "heart")}


# --------------------------------------------------------------------------------------------
# Reading a checkpoint, read-only


@dataclass(frozen=True)
class LoadedCheckpoint:
    state: dict[str, Any]
    path: Path
    key: tuple[int, int, int] | None  # stat of the file read: `R` reloads when last.pt differs
    note: str | None = None  # why it is not last.pt


def _read_state(path: Path) -> tuple[dict[str, Any] | None, str]:
    """(checkpoint dict, "") or (None, why not) for one file, read whole into memory."""
    import torch

    fh = open_regular(path)
    if fh is None:
        return None, "missing" if not os.path.lexists(path) else "not a regular file"
    try:
        with fh:
            data = fh.read(MAX_CHECKPOINT_BYTES + 1)
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    if len(data) > MAX_CHECKPOINT_BYTES:
        return None, "too large to be a checkpoint"
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged file
        return None, f"corrupt ({brief(exc, 60)})"
    if not isinstance(state, dict) or "model" not in state or "iteration" not in state:
        return None, "not a bvae checkpoint"
    return state, ""


def read_checkpoint(run: Run) -> LoadedCheckpoint:
    """``last.pt``, read again once if it changed while it was read, else ``prev.pt``; a
    one-line :class:`RunError` when neither loads."""
    problems: list[str] = []
    for path in (run.last_checkpoint, run.previous_checkpoint):
        why = ""
        for _attempt in range(2):
            before = stat_key(path)
            state, why = _read_state(path)
            if state is not None:
                note = (f"{CHECKPOINTS_DIR}/{problems[0]}; using {path.name}, the checkpoint "
                        "before it") if problems else None
                return LoadedCheckpoint(state, path, before, note)
            if stat_key(path) == before:  # not replaced meanwhile: reading again won't help
                break
        problems.append(f"{path.name} is {why}")
    if all(p.endswith(" is missing") for p in problems):
        raise RunError(f"run {run.id} has no checkpoint yet; wait for its first checkpoint, or "
                       f"'bvae resume {run.id}' to train it")
    raise RunError(f"run {run.id} has no readable checkpoint ({', '.join(problems)}); "
                   f"'bvae resume {run.id} --restart' trains it again")


# --------------------------------------------------------------------------------------------
# Parsing what a user types (shared by the CLI's options and the screen's form)


def parse_latent(text: str, z_dim: int) -> int:
    """'z2' or '2' -> 2; a latent the model does not have is a one-line error."""
    body = text.strip().lower()
    body = body[1:] if body.startswith("z") else body
    if not body.isdigit():
        raise ConfigError(f"latent {text!r} is not a latent name; use z0..z{z_dim - 1}")
    latent = int(body)
    if latent >= z_dim:
        raise ConfigError(f"latent z{latent} does not exist: this run has {z_dim} latents "
                          f"(z0..z{z_dim - 1})")
    return latent


def _pairs(text: str, option: str, example: str) -> list[tuple[str, str]]:
    pairs = []
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(f"{option} takes name=value pairs, e.g. {option} {example}; "
                              f"got {part.strip()!r}")
        pairs.append((name.strip(), value.strip()))
    if not pairs:
        raise ConfigError(f"{option} needs at least one name=value, e.g. {option} {example}")
    return pairs


def parse_set(text: str, z_dim: int) -> dict[int, float]:
    """'z2=1.5,z7=-1' -> {2: 1.5, 7: -1.0}."""
    out: dict[int, float] = {}
    for name, value in _pairs(text, "--set", "z2=1.5,z7=-1"):
        latent = parse_latent(name, z_dim)
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ConfigError(f"--set {name}={value}: the value must be a finite number, "
                              "e.g. z2=1.5")
        out[latent] = number
    return out


def class_names(factor: str, size: int, dataset: Any) -> tuple[str, ...] | None:
    """Names of a factor's classes, where they are known and match its size: the registry's
    data sets' (dSprites' shapes); never a ``folder:PATH``'s, whose factors.csv numbers its
    own levels (a lab's 3-level 'shape' is not square / ellipse / heart)."""
    if str(getattr(dataset, "name", dataset)).startswith("folder:"):
        return None
    names = CLASS_NAMES.get(factor)
    return names if names is not None and len(names) == size else None


def class_label(factor: str, size: int, cls: int, dataset: Any) -> str:
    names = class_names(factor, size, dataset)
    return names[cls] if names else str(cls)


def need_factors(dataset: Any, option: str = "--factors") -> None:
    """A one-line error when the dataset has no ground-truth factors."""
    if not getattr(dataset, "factor_sizes", ()) or getattr(dataset, "classes", None) is None:
        from bvae_tui.datasets.registry import factors_fix

        raise ConfigError(f"dataset {dataset.name} has no ground-truth factors, so {option} "
                          "cannot be used; pick the image with --image INDEX, or "
                          f"{factors_fix(str(dataset.name))}")


def factor_position(dataset: Any, factor: str, option: str = "--factors") -> int:
    """Position of ``factor`` among the dataset's factors; one-line errors otherwise."""
    need_factors(dataset, option)
    names = tuple(dataset.factor_names)
    if factor not in names:
        lowered = {n.lower(): n for n in names}
        if factor.lower() not in lowered:
            raise ConfigError(f"dataset {dataset.name} has no factor {factor!r}; its factors "
                              f"are {', '.join(names)}")
        factor = lowered[factor.lower()]
    return names.index(factor)


def parse_class(dataset: Any, factor: str, value: str, option: str = "--factors") -> int:
    """A class of ``factor`` given as its index ('2') or its name ('heart')."""
    k = factor_position(dataset, factor, option)
    name, size = dataset.factor_names[k], int(dataset.factor_sizes[k])
    names = class_names(name, size, dataset)
    text = value.strip().lower()
    if names and text in names:
        return names.index(text)
    hint = f" or one of {', '.join(names)}" if names else ""
    if not text.lstrip("-").isdigit():
        raise ConfigError(f"{option} {name}={value}: the class must be a number 0..{size - 1}"
                          f"{hint}")
    cls = int(text)
    if not 0 <= cls < size:
        raise ConfigError(f"{option} {name}={cls} is out of range: {name} has {size} classes "
                          f"(0..{size - 1}){hint}")
    return cls


def parse_factors(dataset: Any, text: str) -> dict[int, int]:
    """'shape=heart,scale=2' -> {factor position: class}."""
    need_factors(dataset, "--factors")
    out: dict[int, int] = {}
    for name, value in _pairs(text, "--factors", "shape=2,scale=1"):
        out[factor_position(dataset, name)] = parse_class(dataset, name, value)
    return out


def default_classes(names: Sequence[str], sizes: Sequence[int]) -> list[int]:
    """The classes a factor left unnamed takes: the largest scale, shape, angle and colour 0,
    positions at the centre (the traversal exports' fixed images use the same)."""
    out = []
    for name, size in zip(names, sizes, strict=True):
        if name == "scale":
            out.append(size - 1)
        elif name in ("orientation", "color", "shape"):
            out.append(0)
        else:
            out.append(size // 2)
    return out


# --------------------------------------------------------------------------------------------
# What the faces show


@dataclass
class View:
    """One frame of the explore view: float32 images (C, 64, 64) in [0, 1]."""

    index: int | None  # dataset index of the source image (None: a code from the prior)
    source: np.ndarray | None
    recon: np.ndarray  # decode of the source's code (of the prior code itself)
    base: np.ndarray  # (Z,) the source's code: `r` goes back to it
    code: np.ndarray  # (Z,) the edited code
    edited: np.ndarray  # decode of ``code``
    latent: int
    values: np.ndarray  # (S,) the row's values of ``latent``
    row: np.ndarray  # (S, C, 64, 64)
    limit: float = LIMIT


@dataclass
class Response:
    """The inverse view: the encoder means of the source image and of the same image with one
    factor stepped to the next class (the previous one from the last class)."""

    index: int
    factor: str
    from_class: int
    to_class: int
    to_index: int
    before: np.ndarray  # (Z,) encoder means
    after: np.ndarray
    delta: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.delta = (self.after - self.before).astype(np.float32)

    def to_dict(self, order: Sequence[int] | None = None) -> dict[str, Any]:
        latents = list(order) if order is not None else list(range(len(self.delta)))
        return {"index": self.index, "factor": self.factor, "from_class": self.from_class,
                "to_class": self.to_class, "to_index": self.to_index,
                "latents": [{"latent": f"z{k}", "before": float(self.before[k]),
                             "after": float(self.after[k]), "delta": float(self.delta[k])}
                            for k in latents]}


@dataclass(frozen=True)
class LatentInfo:
    latent: int
    kl: float | None
    active: bool
    factor: str | None  # the factor it carries most (eval.json's MI matrix)
    share: float | None


class Explorer:
    """A run's model, loaded read-only, with its dataset (None when it is not prepared here)."""

    def __init__(self, run: Run, loaded: LoadedCheckpoint, model: Any, dataset: Any | None,
                 device: str = "cpu", limit: float = LIMIT, data_problem: str | None = None):
        self.run = run
        self.loaded = loaded
        self.model = model
        self.dataset = dataset
        self.device = device
        self.limit = float(limit)
        self.data_problem = data_problem  # why there is no dataset (a one-line error)
        self.iteration = int(loaded.state["iteration"])
        self.z_dim = int(getattr(model, "z_dim", 0) or loaded.state.get("z_dim") or 0)
        self.kl = self._kl()
        self.order = _kl_order(self.kl, self.z_dim)
        self.latents = self._latent_info()

    # Loading ----------------------------------------------------------------------------------
    def _kl(self) -> list[float] | None:
        """Per-latent KL of this checkpoint on a seeded sample of the data; without the data,
        the run's last logged KL; else None (natural order)."""
        from bvae_tui.engine.analysis import visualise as vis

        if self.dataset is not None and self.dataset.n > 0:
            rng = np.random.RandomState(0)
            idx = np.sort(rng.choice(self.dataset.n, size=min(KL_SAMPLE, self.dataset.n),
                                     replace=False))
            return vis.kl_of_images(self.model, self._float_images(idx))
        try:
            row = self.run.last_metrics()
        except (UserError, OSError):
            row = None
        kl = row.kl_per_latent if row else None
        return list(kl) if kl is not None and len(kl) == self.z_dim else None

    def _latent_info(self) -> list[LatentInfo]:
        matrix = None
        try:
            result = self.run.eval_results()
            matrix = MIMatrix.from_result(result) if result is not None else None
        except (UserError, OSError):
            matrix = None
        if matrix is not None and matrix.latents != self.z_dim:
            matrix = None  # evaluated another model (a z_dim it no longer has)
        shares = matrix.shares() if matrix is not None else None
        out = []
        for k in range(self.z_dim):
            kl = self.kl[k] if self.kl is not None else None
            best = matrix.main_factor(k) if matrix is not None else None
            out.append(LatentInfo(k, kl, kl is not None and kl > ACTIVE_KL,
                                  matrix.factors[best] if best is not None else None,
                                  shares[k][best] if shares and best is not None else None))
        return out

    @property
    def has_factors(self) -> bool:
        return self.dataset is not None and bool(getattr(self.dataset, "factor_sizes", ())) \
            and getattr(self.dataset, "classes", None) is not None

    def need_dataset(self) -> Any:
        if self.dataset is None:
            raise RunError(self.data_problem or f"the dataset of run {self.run.id} is not "
                           "available here")
        return self.dataset

    def checkpoint_changed(self) -> bool:
        """Whether last.pt is another file than the one loaded (`R` reloads it)."""
        now = stat_key(self.run.last_checkpoint)
        if now is None:
            return False
        return self.loaded.path != self.run.last_checkpoint or now != self.loaded.key

    # Images and codes -------------------------------------------------------------------------
    def _float_images(self, idx: Any) -> Any:
        import torch

        from bvae_tui.engine.analysis import visualise as vis

        x = np.ascontiguousarray(self.need_dataset().float_images_at(idx), np.float32)
        return torch.from_numpy(x).to(vis.model_device(self.model))

    def check_index(self, index: int) -> int:
        ds = self.need_dataset()
        if isinstance(index, bool) or not 0 <= int(index) < ds.n:
            raise ConfigError(f"image index {index} is out of range: {ds.name} has {ds.n} "
                              f"images (0..{ds.n - 1})")
        return int(index)

    def image(self, index: int) -> np.ndarray:
        """The source image float32 (C, 64, 64) in [0, 1]."""
        idx = self.check_index(index)
        return np.asarray(self.need_dataset().float_images_at([idx])[0], np.float32)

    def encode(self, indices: Sequence[int]) -> np.ndarray:
        """Encoder means float32 (M, Z) of dataset images."""
        from bvae_tui.engine.analysis import visualise as vis

        idx = [self.check_index(i) for i in indices]
        return vis.encode_means(self.model, self._float_images(idx)).cpu().numpy()

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Decodes float32 (N, C, 64, 64) of codes (N, Z)."""
        import torch

        from bvae_tui.engine.analysis import visualise as vis

        codes = np.asarray(codes, np.float32).reshape(-1, self.z_dim)
        return vis.decode(self.model, torch.from_numpy(np.ascontiguousarray(codes)))

    def prior_code(self, seed: int = 0) -> np.ndarray:
        """A code drawn from N(0, I) (seeded: the same seed gives the same code)."""
        rng = np.random.RandomState(int(seed) % 2**32)
        return rng.standard_normal(self.z_dim).astype(np.float32)

    def random_index(self, seed: int) -> int:
        return int(np.random.RandomState(int(seed) % 2**32).randint(self.need_dataset().n))

    def base(self, index: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
        """(code, source image) of a dataset image, or a prior code without an image."""
        if index is None:
            return self.prior_code(seed), None
        return self.encode([index])[0], self.image(index)

    def view(self, index: int | None, base: np.ndarray, code: np.ndarray, latent: int,
             source: np.ndarray | None = None, steps: int = STEPS) -> View:
        """Everything the screen draws for one code, in one batched decode."""
        base = np.asarray(base, np.float32)
        code = np.asarray(code, np.float32)
        values = render.traversal_values(self.limit, steps)
        row = np.repeat(code[None, :], steps, axis=0)
        row[:, latent] = values
        images = self.decode(np.concatenate([base[None], code[None], row]))
        if source is None and index is not None:
            source = self.image(index)
        return View(index, source, images[0], base.copy(), code.copy(), images[1], latent,
                    values, images[2:], self.limit)

    # Factors ----------------------------------------------------------------------------------
    def classes_of(self, index: int) -> list[int]:
        ds = self.need_dataset()
        need_factors(ds, "--factors")
        return [int(c) for c in ds.classes[self.check_index(index)]]

    def index_for(self, chosen: dict[int, int], start: Sequence[int] | None = None) -> int:
        """The index of the image whose classes are ``chosen`` (factor position -> class);
        the other factors keep ``start``'s classes (default: :func:`default_classes`)."""
        ds = self.need_dataset()
        need_factors(ds, "--factors")
        classes = list(start) if start is not None else default_classes(ds.factor_names,
                                                                        ds.factor_sizes)
        for k, cls in chosen.items():
            classes[k] = int(cls)
        if hasattr(ds, "closest_index"):  # an incomplete grid: the nearest existing image
            return ds.closest_index(classes, list(chosen))
        return int(ds.index_of(np.asarray(classes, np.int64))[0])

    def respond(self, index: int, factor: str) -> Response:
        """The inverse view: how each latent's mean moves when ``factor`` of image ``index``
        steps to its next class."""
        ds = self.need_dataset()
        k = factor_position(ds, factor, "--respond")
        name, size = ds.factor_names[k], int(ds.factor_sizes[k])
        if size < 2:
            raise ConfigError(f"factor {name} has one class in {ds.name}: nothing to step; "
                              f"pick another of {', '.join(self.steppable_factors())}")
        classes = self.classes_of(index)
        now = classes[k]
        to = now + 1 if now + 1 < size else now - 1
        other = self.index_for({k: to}, classes)
        means = self.encode([index, other])
        return Response(int(index), name, now, to, other, means[0], means[1])

    def steppable_factors(self) -> list[str]:
        if not self.has_factors:
            return []
        ds = self.dataset
        return [n for n, s in zip(ds.factor_names, ds.factor_sizes, strict=True) if s > 1]

    def describe_index(self, index: int | None) -> str:
        """'index 1234: shape=heart scale=2 ...' (the classes where the dataset has them)."""
        if index is None:
            return "a code from the prior"
        if not self.has_factors:
            return f"index {index}"
        ds = self.dataset
        parts = [f"{n}={class_label(n, int(s), c, ds)}" for n, s, c in
                 zip(ds.factor_names, ds.factor_sizes, self.classes_of(index), strict=True)
                 if int(s) > 1]
        return f"index {index}: " + " ".join(parts)


def _kl_order(kl: Sequence[float] | None, z_dim: int) -> list[int]:
    from bvae_tui.engine.analysis.visualise import latent_order

    return latent_order(kl, z_dim, "kl")


def open_explorer(run: Run, device: str = "cpu", data_dir: str | os.PathLike | None = None,
                  limit: float = LIMIT, need_data: bool = True,
                  cpu_threads: int | None = None) -> Explorer:
    """The run's latest readable checkpoint (or the one before it) on ``device``, with the
    run's dataset. ``need_data`` False: a dataset that is not prepared here leaves the explorer
    with prior codes only (the screen), instead of a one-line error (the CLI).

    On the CPU the process is set to ``cpu_threads`` intra-op threads (None: :data:`CPU_THREADS`;
    0: left as it is).
    The explorer's batches are a dozen codes: one thread decodes them in about 10 ms, while two
    threads on a 2-core machine busy with other work took over 100 ms a decode (OpenMP threads
    waiting for a core; benchmarks/RESULTS.md, "Explore screen"). The TUI and `bvae explore`
    run in their own processes, which train nothing, so the setting is theirs to make."""
    from bvae_tui.engine.train.checkpoint import model_from_state

    if not (isinstance(limit, (int, float)) and math.isfinite(limit) and 0 < limit <= 20):
        raise ConfigError(f"--limit must be a number in (0, 20]; got {limit!r}")
    if device != "cpu":
        from bvae_tui.engine.runs.devices import resolve_device

        device = resolve_device(device)
    threads = CPU_THREADS if cpu_threads is None else cpu_threads
    if device == "cpu" and threads:
        import torch

        torch.set_num_threads(int(threads))
    cfg = run.config
    loaded = read_checkpoint(run)
    model = model_from_state(loaded.state, cfg).to(device).eval()
    dataset, problem = None, None
    try:
        dataset = _open_data(run, cfg, data_dir)
    except UserError as exc:
        if need_data:
            raise
        problem = str(exc)
    return Explorer(run, loaded, model, dataset, device, limit, problem)


def _open_data(run: Run, cfg: Any, data_dir: str | os.PathLike | None) -> Any:
    """The run's dataset as prepared on this machine; never prepared here (a full dSprites
    would take minutes): a one-line error naming the command that does."""
    from bvae_tui.datasets.prepare import open_dataset

    recorded = run.data_dir
    chosen = recorded if recorded and Path(recorded).is_dir() else data_dir
    return open_dataset(cfg.dataset, chosen, prepare_missing=False, image_size=cfg.image_size)


# --------------------------------------------------------------------------------------------
# Pictures of a view (PNG / GIF), the same for the screen's `e` and `bvae explore -o`

MARK = (250, 200, 40)  # the current value's marker under the row
MARK_H = 3


def triple_image(view: View) -> np.ndarray:
    """Source | reconstruction | edited decode, uint8 (65+1, 3*65+1, 3) (a prior code: its
    decode | edited decode)."""
    tiles = [t for t in (view.source, view.recon, view.edited) if t is not None]
    return render.traversal_grid(np.stack(tiles)[None, None], [view.latent], labels=False)


def marker_x(value: float, limit: float, width: int) -> int:
    """Column of ``value`` on a strip ``width`` pixels wide spanning [-limit, limit]."""
    frac = (min(max(value, -limit), limit) + limit) / (2 * limit)
    return int(round(frac * (width - 1)))


def row_image(view: View) -> np.ndarray:
    """The traversal row uint8 (65+1+MARK_H, S*65+1, 3) with the current value marked below:
    the tile nearest it gets a bar."""
    grid = render.traversal_grid(view.row[None, None], [view.latent], labels=False)
    strip = np.full((MARK_H, grid.shape[1], 3), render.LABEL_BG, np.uint8)
    value = float(view.code[view.latent])
    nearest = int(np.argmin(np.abs(view.values - value)))
    tile = int(view.row.shape[-1])  # the run's image size (64, or 32 / 128)
    left = render.SEP + nearest * (tile + render.SEP)
    strip[:, left:left + tile] = MARK
    return np.concatenate([grid, strip], axis=0)


def view_image(view: View) -> np.ndarray:
    """The PNG of `e`: the three images above the row."""
    top, bottom = triple_image(view), row_image(view)
    width = max(top.shape[1], bottom.shape[1])
    pad = np.full((top.shape[0], width - top.shape[1], 3), render.LABEL_BG, np.uint8)
    gap = np.full((render.PANEL_GAP, width, 3), render.LABEL_BG, np.uint8)
    bottom_pad = np.full((bottom.shape[0], width - bottom.shape[1], 3), render.LABEL_BG,
                         np.uint8)
    return np.concatenate([np.concatenate([top, pad], axis=1), gap,
                           np.concatenate([bottom, bottom_pad], axis=1)], axis=0)


def export_name(explorer: Explorer, view: View, ext: str, seed: int = 0) -> str:
    where = f"i{view.index}" if view.index is not None else f"prior{seed}"
    return f"explore-it{explorer.iteration}-{where}-z{view.latent}.{ext}"


def save_view(explorer: Explorer, view: View, output: str | os.PathLike | None = None,
              fps: float = 5.0, seed: int = 0, kinds: Sequence[str] = ("png",)) -> list[Path]:
    """Write the view: PNG (three images and the row) and/or GIF (the row), into the run's
    exports/ unless ``output`` names a file (its suffix picks the kind) or a folder."""
    from bvae_tui.engine.analysis.export import output_path

    if output is not None and Path(output).suffix.lower() in (".png", ".gif"):
        kinds = (Path(output).suffix.lower()[1:],)
    written = []
    for kind in kinds:
        path = output_path(explorer.run, output, export_name(explorer, view, kind, seed))
        try:
            if kind == "png":
                written.append(render.write_png(path, view_image(view)))
            else:
                frames = render.gif_frames(view.row[None, None], [view.latent],
                                           view.values.tolist(), None)
                written.append(render.write_gif(path, frames, fps=fps))
        except OSError as exc:
            raise RunError(f"cannot write {path} ({exc.strerror or exc}); choose another "
                           "output with -o") from None
    return written
