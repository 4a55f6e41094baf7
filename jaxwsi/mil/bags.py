"""Feature bags on disk: one file per slide, ``[N, D]`` float32 features and the tile locations.

jaxwsi writes ``{slide}.npz`` (numpy zip, read with ``allow_pickle=False``: never a pickle) with
``features`` (float32 [N, D]) and ``locations`` (int64 [N, 2], level-0 tile centres as in the
TFRecords), atomically, plus one ``bags_config.json`` per folder that says how they were made
(extractor, weights file and its SHA-256, preprocessing, tile_px/tile_um, feature size).

It also reads, unchanged, the HDF5 bags CLAM and TRIDENT write (``{slide}.h5`` with datasets
``features`` [N, D] and ``coords`` [N, 2], level-0 top-left corners). When ``coords`` carries
TRIDENT's ``patch_size_level0`` attribute the locations become centres, like jaxwsi's.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxwsi.atomic import write_bytes_atomic, write_text_atomic
from jaxwsi.messages import name_some
from jaxwsi.mil.errors import BagError

BAGS_CONFIG = "bags_config.json"
BAG_SUFFIXES = (".npz", ".h5", ".hdf5")  # searched in this order for a slide's bag
BagsSource = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


@dataclasses.dataclass(frozen=True)
class Bag:
    """One slide's bag: ``features`` float32 [N, D], ``locations`` int64 [N, 2] (x, y) level-0
    tile centres (top-left corners for HDF5 bags without ``patch_size_level0``)."""

    features: np.ndarray
    locations: np.ndarray
    path: Path

    @property
    def num_features(self) -> int:
        return int(self.features.shape[1])

    def __len__(self) -> int:
        return int(self.features.shape[0])


def write_bag(path: str | os.PathLike[str], features: np.ndarray, locations: np.ndarray) -> None:
    """Write one bag atomically as ``.npz`` (a reader never sees half a file)."""
    features = np.asarray(features, np.float32)
    locations = np.asarray(locations, np.int64)
    if features.ndim != 2 or locations.shape != (len(features), 2):
        raise BagError(
            f"{path}: a bag needs features [N, D] and locations [N, 2], got "
            f"{features.shape} and {locations.shape}"
        )
    buffer = io.BytesIO()
    np.savez(buffer, features=features, locations=locations)
    write_bytes_atomic(path, buffer.getvalue())


def read_bag(path: str | os.PathLike[str]) -> Bag:
    """One bag file: jaxwsi ``.npz`` or CLAM/TRIDENT ``.h5``; errors name the file and field."""
    path = Path(path)
    if path.suffix in (".h5", ".hdf5"):
        features, locations = _read_hdf5(path)
    elif path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = {"features", "locations"} - set(data.files)
                if missing:
                    raise BagError(f"{path}: missing array(s) {sorted(missing)} (has {data.files})")
                features, locations = data["features"], data["locations"]
        except (OSError, ValueError) as err:
            if isinstance(err, BagError):
                raise
            raise BagError(f"{path}: not a readable bag ({err})") from err
    else:
        raise BagError(
            f"{path}: unsupported bag file; jaxwsi reads .npz (its own) and .h5 (CLAM/TRIDENT). "
            "Slideflow's .pt bags are pickles: convert them with "
            "np.savez(f, features=torch.load(pt).numpy(), locations=np.load(index)['arr_0'])"
        )
    return _checked(path, features, locations)


def _read_hdf5(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("features", "coords") if k not in f]
            if missing:
                raise BagError(f"{path}: HDF5 bag lacks dataset(s) {missing} (has {list(f)})")
            features = f["features"][()]
            coords = f["coords"]
            locations = coords[()].astype(np.int64)
            size = coords.attrs.get("patch_size_level0")
            if size is not None and locations.ndim == 2:
                locations = locations + int(size) // 2
    except OSError as err:
        raise BagError(f"{path}: not a readable HDF5 file ({err})") from err
    return features, locations


def _checked(path: Path, features: np.ndarray, locations: np.ndarray) -> Bag:
    if features.ndim != 2:
        raise BagError(f"{path}: features must be [N, D], got shape {features.shape}")
    if len(features) == 0:
        raise BagError(f"{path}: the bag is empty (0 tiles); re-extract it or leave the slide out")
    if locations.shape != (len(features), 2):
        raise BagError(
            f"{path}: locations must be [N, 2] for N = {len(features)} tiles, got {locations.shape}"
        )
    if not np.issubdtype(features.dtype, np.floating):
        raise BagError(f"{path}: features must be floating point, got {features.dtype}")
    return Bag(features.astype(np.float32, copy=False), locations.astype(np.int64), path)


def find_bags(bags: BagsSource, slides: Iterable[str]) -> dict[str, Path]:
    """Slide → bag file for every slide, from a folder (``{slide}.npz`` / ``.h5``) or a list of
    files (named by stem); an error lists the slides without a bag."""
    slides = list(slides)
    if isinstance(bags, str | os.PathLike):
        folder = Path(bags)
        if not folder.is_dir():
            raise BagError(f"bags folder not found: {folder}")
        found: dict[str, Path] = {}
        for suffix in reversed(BAG_SUFFIXES):  # the first suffix wins
            found.update({p.stem: p for p in folder.glob(f"*{suffix}")})
        where = str(folder)
    else:
        found = {Path(p).stem: Path(p) for p in bags}
        where = f"the {len(found)} bag files given"
    missing = [s for s in slides if s not in found]
    if missing:
        raise BagError(
            f"{len(missing)} slide(s) have no bag in {where}: {name_some(missing)} "
            "(extract them with jaxwsi.mil.extract_features, or leave them out of the dataset)"
        )
    return {s: found[s] for s in slides}


def load_bags(paths: Mapping[str, Path]) -> dict[str, Bag]:
    """Read every bag; all must have the same feature size (the error names both kinds)."""
    loaded = {slide: read_bag(path) for slide, path in paths.items()}
    sizes: dict[int, list[str]] = {}
    for slide, bag in loaded.items():
        sizes.setdefault(bag.num_features, []).append(slide)
    if len(sizes) > 1:
        detail = "; ".join(
            f"{size}: {name_some([str(paths[s]) for s in group], 3)}"
            for size, group in sorted(sizes.items())
        )
        raise BagError(
            f"bags have features of {len(sizes)} different sizes ({detail}); "
            "use bags from one extractor"
        )
    return loaded


def write_bags_config(folder: str | os.PathLike[str], config: Mapping[str, Any]) -> None:
    write_text_atomic(Path(folder) / BAGS_CONFIG, json.dumps(dict(config), indent=2) + "\n")


def read_bags_config(bags: BagsSource) -> dict[str, Any] | None:
    """The folder's ``bags_config.json`` (None for a list of files or a folder without one,
    e.g. CLAM/TRIDENT bags)."""
    if not isinstance(bags, str | os.PathLike):
        return None
    path = Path(bags) / BAGS_CONFIG
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise BagError(f"{path}: invalid JSON ({err})") from err
