"""The TFRecord files of a dataset: finding them, naming their slides, counting their tiles.

A TFRecord's slide is its file name without ``.tfrecords`` (Slideflow's convention). Tile counts
come from the ``.index.npz`` beside each file, built when missing. A folder may hold the TFRecords
themselves or, as Slideflow lays them out, one ``{tile_px}px_{tile_um}um`` sub-folder per tile size
(`tile_size_folder`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

from jaxwsi.dataset.errors import DatasetError
from jaxwsi.io import load_indexes
from jaxwsi.messages import name_some
from jaxwsi.slide.grid import tile_size_label

log = logging.getLogger(__name__)

SUFFIX = ".tfrecords"
TFRecordSource = str | os.PathLike | Iterable[str | os.PathLike]


def slide_name(path: str | os.PathLike) -> str:
    """The slide a TFRecord holds, from its file name."""
    name = Path(path).name
    return name[: -len(SUFFIX)] if name.endswith(SUFFIX) else Path(name).stem


_LABEL = re.compile(r"\d+px_(\d+(\.\d+)?um|\d+(\.\d+)?x)", re.IGNORECASE)


def tile_size_folder(
    root: str | os.PathLike, tile_px: int | None, tile_um: int | float | str | None
) -> Path | None:
    """``root/{tile_px}px_{tile_um}um`` (or ``..._10x``) if that folder exists, else None; both
    jaxwsi's spelling of the label and Slideflow's (``302.0um``, ``2.50x``) are looked for."""
    if tile_px is None or tile_um is None:
        return None
    slideflow = f"{tile_px}px_{tile_um.lower()}" if isinstance(tile_um, str) else None
    labels = [tile_size_label(tile_px, tile_um), slideflow or f"{tile_px}px_{tile_um}um"]
    return next((Path(root) / label for label in labels if (Path(root) / label).is_dir()), None)


def find_tfrecords(
    source: TFRecordSource,
    tile_px: int | None = None,
    tile_um: int | float | str | None = None,
) -> dict[str, str]:
    """Slide name → TFRecord path, from a folder (its ``*.tfrecords``, or those of its
    ``{tile_px}px_{tile_um}um`` sub-folder when there is one) or a list of paths.

    A missing folder or file, or two files for one slide, is an error; so is a folder of
    tile-size sub-folders without the one asked for.
    """
    if isinstance(source, str | os.PathLike):
        folder = Path(source)
        if not folder.is_dir():
            raise DatasetError(f"TFRecord folder not found: {folder}")
        folder = tile_size_folder(folder, tile_px, tile_um) or folder
        paths = sorted(folder.glob(f"*{SUFFIX}"))
        if not paths:
            sizes = sorted(
                p.name for p in folder.iterdir() if p.is_dir() and _LABEL.fullmatch(p.name)
            )
            if sizes:
                asked = (
                    f"no {tile_size_label(tile_px, tile_um)} folder"
                    if tile_px is not None and tile_um is not None
                    else "pass tile_px and tile_um to choose one"
                )
                raise DatasetError(
                    f"{folder} holds TFRecords by tile size ({name_some(sizes)}): {asked}"
                )
            log.warning("no %s files in %s", SUFFIX, folder)
    else:
        paths = [Path(p) for p in source]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise DatasetError(f"{len(missing)} TFRecord file(s) not found: {missing}")
    by_slide: dict[str, str] = {}
    for path in paths:
        slide = slide_name(path)
        if slide in by_slide:
            raise DatasetError(f"two TFRecords for slide {slide!r}: {by_slide[slide]} and {path}")
        by_slide[slide] = str(path)
    return by_slide


def count_tiles(paths: Iterable[str]) -> dict[str, int]:
    """Tiles per TFRecord path, from its index (missing or stale indexes are built beside the
    files, in parallel). A damaged TFRecord counts its readable tiles, with a warning naming it;
    the loader then raises for it or skips it, as its ``on_error`` says."""
    paths = list(paths)
    indexes = load_indexes(paths, on_error="skip")
    return {path: len(records) for path, records in zip(paths, indexes, strict=True)}
