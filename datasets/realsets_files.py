"""Published source files of SmallNORB, Cars3D and MPI3D: names, URLs, sizes and digests.

Facts only, each with where it was read from (none of these files could be downloaded here).
A data set whose ``url`` ends in ``/`` is a folder of several files (SmallNORB's six): each file
is fetched from ``url + file name``; the others are one file at that URL.

This module imports nothing of the package, so that the registry can import it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceFile:
    """One published file: its name in the data dir, its checksum and (where listed) size."""

    name: str
    kind: str  # "sha256" | "md5" (datasets.download.checksum)
    digest: str
    size: int | None = None  # bytes, where a source lists it


# --- SmallNORB ---------------------------------------------------------------------------------
# The six gzipped binary matrices from the authors' page; sha256 and sizes from
# tensorflow/datasets, tensorflow_datasets/url_checksums/smallnorb.txt (the same URLs).
SMALLNORB_URL = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
_TRAIN = "smallnorb-5x46789x9x18x6x2x96x96-training"
_TEST = "smallnorb-5x01235x9x18x6x2x96x96-testing"
SMALLNORB_FILES = (
    SourceFile(f"{_TRAIN}-dat.mat.gz", "sha256",
               "5ffd6272a07d32695ee1082a26a41a93a37aab8c28da047f8c34ed348d214873", 131_896_188),
    SourceFile(f"{_TRAIN}-cat.mat.gz", "sha256",
               "2784e542c1922060691090952b6cd6278879a216c90f81476f0f00256d42cdaa", 348),
    SourceFile(f"{_TRAIN}-info.mat.gz", "sha256",
               "de7eb932ebe7a4ee16217fead60660d0eb3d23632c2f4d1c51f88c501c17bf32", 71_052),
    SourceFile(f"{_TEST}-dat.mat.gz", "sha256",
               "cf7104eed3e51174d2f65b66d1e5878b9da233b886f161b0d88f4510ba2c7474", 130_799_817),
    SourceFile(f"{_TEST}-cat.mat.gz", "sha256",
               "ecaf6d5bb8c3bc5eab9cf0258f6d2198dd474e016e374836fc097f2e5ff509ff", 347),
    SourceFile(f"{_TEST}-info.mat.gz", "sha256",
               "16adf314226327ee006d1a44db8cfef52773c06c829951d5653a9f6f310248a2", 10_428),
)
# (prefix of the dat / cat / info files of one half: training holds instances 4, 6, 7, 8, 9 of
# each category, testing 0, 1, 2, 3, 5; together they are the full grid)
SMALLNORB_HALVES = (_TRAIN, _TEST)
# disentanglement_lib's order (data/ground_truth/norb.py): category, instance, elevation,
# azimuth, lighting; instance is not a latent factor there (it is drawn at random).
SMALLNORB_FACTORS = ("category", "instance", "elevation", "azimuth", "lighting")
SMALLNORB_SIZES = (5, 10, 9, 18, 6)
SMALLNORB_NUISANCE = ("instance",)

# --- Cars3D ------------------------------------------------------------------------------------
# Reed et al.'s archive (data/cars/car_*_mesh.mat + list.txt, plus other sets we skip); its full
# md5 from nmichlo/disent, disent/dataset/data/_groundtruth__cars3d.py (uri_hash 'full'). No
# published size was found.
CARS3D_URL = "http://www.scottreed.info/files/nips2015-analogy-data.tar.gz"
CARS3D_FILES = (SourceFile("nips2015-analogy-data.tar.gz", "md5",
                           "4e866a7919c1beedf53964e6f7a23686"),)
# disentanglement_lib's order (data/ground_truth/cars3d.py): elevation, azimuth, object type.
CARS3D_FACTORS = ("elevation", "azimuth", "object_type")
CARS3D_SIZES = (4, 24, 183)

# --- MPI3D -------------------------------------------------------------------------------------
# The three npz of the final release (key "images", uint8 (1036800, 64, 64, 3) in grid order);
# full md5s from nmichlo/disent, disent/dataset/data/_groundtruth__mpi3d.py (uri_hash 'full').
# Factor names and sizes from rr-learning/disentanglement_dataset's README: 6 x 6 x 2 x 3 x 3 x
# 40 x 40 = 1,036,800 for all three (disentanglement_lib's mpi3d.py still lists 4 x 4 colours
# and shapes for toy/realistic: the challenge's first, smaller release).
MPI3D_URL = "https://storage.googleapis.com/disentanglement_dataset/Final_Dataset/"
MPI3D_FILES = {
    "mpi3d-toy": (SourceFile("mpi3d_toy.npz", "md5", "55889cb7c7dfc655d6e0277beee88868"),),
    "mpi3d-realistic": (SourceFile("mpi3d_realistic.npz", "md5",
                                   "59a6225b88b635365f70c91b3e52f70f"),),
    "mpi3d-real": (SourceFile("mpi3d_real.npz", "md5", "0f33f609918fb5c97996692f91129802"),),
}
MPI3D_FACTORS = ("object_color", "object_shape", "object_size", "camera_height",
                 "background_color", "horizontal_axis", "vertical_axis")
MPI3D_SIZES = (6, 6, 2, 3, 3, 40, 40)

SOURCES: dict[str, tuple[SourceFile, ...]] = {
    "smallnorb": SMALLNORB_FILES,
    "cars3d": CARS3D_FILES,
    **MPI3D_FILES,
}


def file_url(base: str, source: SourceFile, many: bool) -> str:
    """Where ``source`` is fetched from: ``base`` itself, or ``base`` + its name for a folder."""
    if many or base.endswith("/"):
        return base.rstrip("/") + "/" + source.name
    return base


def download_bytes(name: str) -> int | None:
    """Bytes a download of ``name`` fetches, when every one of its files' sizes is published."""
    sizes = [f.size for f in SOURCES.get(name, ())]
    return sum(sizes) if sizes and None not in sizes else None  # type: ignore[arg-type]
