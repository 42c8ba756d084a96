"""What the user changed in the new-run form, and what a dataset choice means for a launch.

A field counts as edited when its value differs from what the preset applied last (or the
defaults) gives it: a preset then changes only the fields nobody touched, and `esc` asks before
throwing edits away. No Textual here: the form passes its controls' values in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bvae_tui.engine.config import PRESETS, FieldInfo
from bvae_tui.engine.errors import ConfigError
from bvae_tui.safe_text import plain
from bvae_tui.tui.form_sweep import base_values, field_values


def _same(info: FieldInfo, raw: Any, value: Any) -> bool:
    """Whether a control's raw value (text, a typed value or several picks) reads as
    ``value``; text that does not parse is an edit (the user typed it)."""
    try:
        found = field_values(info, raw)
    except ConfigError:
        return False
    return len(found) == 1 and found[0] == value


def edited_fields(fields: Sequence[FieldInfo], raw: Mapping[str, Any],
                  preset: str | None) -> list[str]:
    """The fields whose value differs from ``preset``'s (or the default). The device picker is
    left out: it picks what the machine has (the CPU where there is no GPU) by itself, and no
    preset sets a device."""
    base = base_values(fields, preset)
    return [f.name for f in fields if f.name in raw and f.widget != "device"
            and not _same(f, raw[f.name], base[f.name])]


def preset_conflicts(fields: Sequence[FieldInfo], raw: Mapping[str, Any],
                     edited: Sequence[str], preset: str) -> list[str]:
    """The edited fields that ``preset`` sets, to something else than they hold (the fields
    it does not set keep their edits without a question)."""
    sets = PRESETS.get(preset, {})
    by_name = {f.name: f for f in fields}
    return [name for name in edited if name in sets and name in by_name
            and not _same(by_name[name], raw.get(name), sets[name])]


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def not_prepared_note(name: str, data_dir: Path) -> str:
    """What launching does with a dataset that is not prepared yet, in a few words (from the
    datasets package's own check, so that it cannot promise what launch will not do): dSprites
    is built, files already in the data dir are prepared, anything else must be downloaded
    first (launch does not download; the size where it is known)."""
    from bvae_tui.datasets.loader import check_available
    from bvae_tui.datasets.realsets_files import download_bytes
    from bvae_tui.datasets.registry import SHAPES3D_SIZE

    if name in ("dsprites", "dsprites-mini"):
        return "not prepared: launching builds it"
    try:
        check_available(name, data_dir)
    except Exception:  # noqa: BLE001 - launch would refuse: say how to get it
        known = SHAPES3D_SIZE if name == "shapes3d" else download_bytes(name)
        size = f", {_size(known)}" if known else ""
        return f"not prepared: run bvae data download {plain(name)}{size} first"
    from bvae_tui.datasets.registry import get_spec

    if get_spec(name).extra.get("variant"):  # drawn over dSprites, which launching builds
        return "not prepared: launching builds it"
    return "not prepared: launching prepares it from its files"


def dataset_help() -> str:
    """The dataset field's hint: every registered dataset, from the registry (the schema's
    help lists them by hand and had left shapes3d out)."""
    from bvae_tui.datasets.registry import dataset_names

    return f"dataset name: {', '.join(dataset_names())} or folder:PATH (any folder of images)"


def image_size_problem(dataset: str, image_size: int) -> str | None:
    """Why ``dataset`` cannot be trained at ``image_size`` (dSprites at 128: it is 64x64 at the
    source), in the words launch would refuse it with; None when it can, or when the dataset
    itself is wrong (its own field says so)."""
    from bvae_tui.datasets.errors import DataError
    from bvae_tui.datasets.image_size import sized
    from bvae_tui.datasets.registry import get_spec

    try:
        spec = get_spec(dataset)
    except DataError:
        return None
    try:
        sized(spec, int(image_size))
    except DataError as exc:
        return str(exc)
    return None
