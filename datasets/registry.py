"""Dataset registry: name -> what the dataset is and how it is obtained.

Names: ``dsprites``, ``dsprites-mini`` (a small sub-grid of procedural dSprites for quick looks and
tests), ``celeba``, ``chairs`` (3D Chairs), ``shapes3d`` (DeepMind's 3dshapes), ``folder:PATH`` (any
folder of jpg/png images).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from bvae_tui.datasets import folder_factors, realsets_files
from bvae_tui.datasets.errors import DataError

IMAGE_SIZE = 64
# --image-size choices of a dataset whose source images are larger than 64x64.
LARGER_SOURCE = (32, 64, 128)

DSPRITES_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
# raw.githubusercontent.com directly: github.com/.../raw/... answers with a redirect to this other
# host, which downloads refuse (datasets.download follows same-host redirects only).
DSPRITES_URL = (
    "https://raw.githubusercontent.com/google-deepmind/dsprites-dataset/master/" + DSPRITES_FILE
)
# git blob id of the file: sha1(b"blob %d\0" % size + content); the repository's own id of it
DSPRITES_GIT_BLOB = "d98996d3f8ee1550e06b9d4ed78d0beb478910d5"

CELEBA_URL = "https://s3-us-west-1.amazonaws.com/udacity-dlnfd/datasets/celeba.zip"
# md5 as torchvision's CelebA lists it for img_align_celeba.zip
CELEBA_MD5 = "00d2c5bc6d35e252742224ab0c1e8fcb"
CHAIRS_URL = "https://www.di.ens.fr/willow/research/seeing3Dchairs/data/rendered_chairs.tar"
# md5 of rendered_chairs.tar: no digest from the authors was found. This one is from a public
# repository's torchvision-style `Chairs(VisionDataset)` class (found by GitHub code search; the
# index did not name the repository), whose constructor refuses to load unless the local file
# matches it, so its author's copy did. A single source: if the real file fails this check,
# suspect this digest first.
CHAIRS_MD5 = "7941bff4d19665ed2dd8c82e88293e1b"
SHAPES3D_FILE = "3dshapes.h5"
SHAPES3D_URL = "https://storage.googleapis.com/3d-shapes/3dshapes.h5"
SHAPES3D_SIZE = 267_573_662  # bytes
# sha256 (and the size above) from tensorflow/datasets, tensorflow_datasets/url_checksums/
# shapes3d.txt; nmichlo/disent (disent/dataset/data/_groundtruth__shapes3d.py) lists the same
# file's full md5 as 099a2078d58cec4daad0702c55d06868.
SHAPES3D_SHA256 = "0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785"
SHAPES3D_FACTORS = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")

DSPRITES_FACTORS = ("color", "shape", "scale", "orientation", "posX", "posY")


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is. ``factor_sizes`` is empty when it has no ground-truth factors."""

    name: str
    title: str
    channels: int
    recon: str  # default reconstruction distribution: "bernoulli" | "gaussian"
    binary: bool = False  # images are {0, 1}: stored bit-packed, 512 bytes an image
    factor_names: tuple[str, ...] = ()
    factor_sizes: tuple[int, ...] = ()
    url: str | None = None  # where a download comes from (None: generated or local)
    source_hint: str = ""  # how to obtain it by hand, for the offline error message
    folder: Path | None = None  # for folder:PATH datasets
    extra: dict = field(default_factory=dict, compare=False)
    # Square sides it can be prepared at (--image-size): 64 only where the source is 64x64;
    # (32, 64, 128) where the source is larger. ``image_size``: the side this spec is for (see
    # datasets.image_size.sized); its cache is a directory of its own unless it is 64.
    image_sizes: tuple[int, ...] = (IMAGE_SIZE,)
    image_size: int = IMAGE_SIZE

    @property
    def has_factors(self) -> bool:
        # A folder with a factors.csv names its factors before it is prepared (sizes come then).
        return bool(self.factor_sizes or self.factor_names)

    @property
    def cache_name(self) -> str:
        """Directory name of the prepared cache under the data root (64x64: the name caches
        always had; another size adds ``-<size>px``)."""
        if self.extra.get("base"):  # a dSprites variant draws from its base's cache
            return str(self.extra["base"])
        size = "" if self.image_size == IMAGE_SIZE else f"-{self.image_size}px"
        if self.folder is None:
            return self.name + size
        digest = hashlib.sha1(str(self.folder).encode()).hexdigest()[:8]
        slug = "".join(c if c.isalnum() else "-" for c in self.folder.name)[:24] or "root"
        return f"folder-{slug}-{digest}{size}"


_SPECS: dict[str, DatasetSpec] = {
    "dsprites": DatasetSpec(
        name="dsprites",
        title="dSprites (737,280 binary 64x64 sprites; real file if present, else procedural)",
        channels=1,
        recon="bernoulli",
        binary=True,
        factor_names=DSPRITES_FACTORS,
        factor_sizes=(1, 3, 6, 40, 32, 32),
        url=DSPRITES_URL,
        source_hint=f"put {DSPRITES_FILE} (from github.com/deepmind/dsprites-dataset) in",
    ),
    "dsprites-mini": DatasetSpec(
        name="dsprites-mini",
        title="procedural dSprites sub-grid (3 shapes x 3 scales x 8 angles x 8 x 8 positions)",
        channels=1,
        recon="bernoulli",
        binary=True,
        factor_names=DSPRITES_FACTORS,
        factor_sizes=(1, 3, 3, 8, 8, 8),
    ),
    "celeba": DatasetSpec(
        name="celeba",
        title="CelebA aligned faces, centre-cropped to 64x64 RGB",
        channels=3,
        recon="gaussian",
        url=CELEBA_URL,
        source_hint="put celeba.zip or the img_align_celeba/ folder in",
        image_sizes=LARGER_SOURCE,
    ),
    "chairs": DatasetSpec(
        name="chairs",
        title="3D Chairs renders, resized to 64x64 RGB",
        channels=3,
        recon="gaussian",
        url=CHAIRS_URL,
        source_hint="put rendered_chairs.tar (or the extracted rendered_chairs/ folder) in",
        image_sizes=LARGER_SOURCE,
    ),
    "shapes3d": DatasetSpec(
        name="shapes3d",
        title="3dshapes (480,000 64x64 RGB renders, 6 ground-truth factors)",
        channels=3,
        recon="gaussian",
        factor_names=SHAPES3D_FACTORS,
        factor_sizes=(10, 10, 10, 8, 4, 15),
        url=SHAPES3D_URL,
        source_hint=f"put {SHAPES3D_FILE} (from storage.googleapis.com/3d-shapes) in",
    ),
    # The rest of Locatello et al.'s study and the NeurIPS 2019 challenge's MPI3D (files,
    # digests and factor orders: datasets/realsets_files.py). Bernoulli reconstruction for
    # all of them, as disentanglement_lib trained every data set of the study (grey or colour,
    # pixels in [0, 1]): scores and traversals compare with the paper's.
    "smallnorb": DatasetSpec(
        name="smallnorb",
        title="SmallNORB (48,600 96x96 grey photos of toys resized to 64x64, 5 factors, "
              "instance not scored)",
        channels=1,
        recon="bernoulli",
        factor_names=realsets_files.SMALLNORB_FACTORS,
        factor_sizes=realsets_files.SMALLNORB_SIZES,
        url=realsets_files.SMALLNORB_URL,
        source_hint="put the six smallnorb-5x*-{training,testing}-{dat,cat,info}.mat.gz files "
                    "(from cs.nyu.edu/~ylclab/data/norb-v1.0-small) in",
        image_sizes=(32, IMAGE_SIZE),  # 96x96 at the source: 128 would be upsampled
    ),
    "cars3d": DatasetSpec(
        name="cars3d",
        title="Cars3D (17,568 128x128 RGB car renders resized to 64x64, 3 factors)",
        channels=3,
        recon="bernoulli",
        factor_names=realsets_files.CARS3D_FACTORS,
        factor_sizes=realsets_files.CARS3D_SIZES,
        url=realsets_files.CARS3D_URL,
        source_hint="put nips2015-analogy-data.tar.gz (from www.scottreed.info) in",
        image_sizes=LARGER_SOURCE,
    ),
    **{name: DatasetSpec(
        name=name,
        title=f"MPI3D {name.removeprefix('mpi3d-')} (1,036,800 64x64 RGB images of a robot "
              "arm's object, 7 factors)",
        channels=3,
        recon="bernoulli",
        factor_names=realsets_files.MPI3D_FACTORS,
        factor_sizes=realsets_files.MPI3D_SIZES,
        url=realsets_files.MPI3D_URL + files[0].name,
        source_hint=f"put {files[0].name} (from storage.googleapis.com/disentanglement_dataset"
                    "/Final_Dataset) in",
    ) for name, files in realsets_files.MPI3D_FILES.items()},
}

# The dSprites variants of Locatello et al.'s study (datasets/dsprites_variants.py), over the
# full grid and over dsprites-mini for quick looks and tests. No cache of their own: each draws
# its colour, noise or patch per batch from its base's binary cache (``cache_name``). Bernoulli
# reconstruction, as disentanglement_lib trains them (pixels in [0, 1]), so scores compare.
SCREAM_URL = "https://upload.wikimedia.org/wikipedia/commons/f/f4/The_Scream.jpg"
_VARIANT_LOOKS = {
    "color": "the sprite in a random colour (each channel uniform in [0.5, 1]) on black",
    "noisy": "a white sprite on uniform noise in [0, 1]",
    "scream": "the sprite inverted on a colour-shifted patch of The Scream",
}
_SPECS.update({
    f"{kind}-{base}": DatasetSpec(
        name=f"{kind}-{base}",
        title=f"{kind}-dSprites: {looks}; 64x64 RGB, drawn per observation from {base}",
        channels=3,
        recon="bernoulli",
        factor_names=DSPRITES_FACTORS,
        factor_sizes=_SPECS[base].factor_sizes,
        url=SCREAM_URL if kind == "scream" else None,
        source_hint="put scream.jpg (Munch's The Scream, from Wikimedia Commons) in"
        if kind == "scream" else "",
        extra={"variant": kind, "base": base},
    )
    for kind, looks in _VARIANT_LOOKS.items() for base in ("dsprites", "dsprites-mini")
})


def dataset_names() -> list[str]:
    """The fixed names (``folder:PATH`` comes on top of these)."""
    return list(_SPECS)


def factors_fix(name: str) -> str:
    """What to do about ``name`` having no ground-truth factors, for the one-line errors of the
    metrics, probes and explore view: a folder can be given a factors.csv; otherwise, the data
    sets that have factors."""
    if name.startswith("folder:"):
        return ("write a factors.csv beside its images (a file column, then one integer class "
                "column per factor)")
    have = ", ".join(n for n, spec in _SPECS.items() if spec.has_factors)
    return f"use one that has them ({have}), or folder:PATH with a factors.csv"


def get_spec(name: str) -> DatasetSpec:
    """Resolve a dataset name to its spec, or raise :class:`DataError` naming the valid ones."""
    if name.startswith("folder:"):
        raw = name[len("folder:") :]
        if not raw:
            raise DataError("dataset 'folder:' needs a path, e.g. --dataset folder:/data/images")
        path = Path(os.path.expanduser(raw)).resolve()
        return DatasetSpec(
            name=f"folder:{path}",
            title=f"images under {path}",
            channels=3,
            recon="gaussian",
            folder=path,
            factor_names=folder_factors.factor_names(path),  # from factors.csv's header
            image_sizes=LARGER_SOURCE,
        )
    try:
        return _SPECS[name]
    except KeyError:
        valid = ", ".join([*_SPECS, "folder:PATH"])
        raise DataError(f"unknown dataset '{name}'; choose one of: {valid}") from None


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root: ``--data-dir``, else ``$BVAE_DATA_DIR``, else ``./data``."""
    chosen = data_dir or os.environ.get("BVAE_DATA_DIR") or "data"
    return Path(chosen).expanduser().resolve()


def find_real_dsprites(root: Path) -> Path | None:
    """The original npz in the data dir, if the user put it there or downloaded it."""
    path = root / DSPRITES_FILE
    return path if path.is_file() else None
