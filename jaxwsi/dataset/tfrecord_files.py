"""The TFRecord files of a dataset: finding them, naming their slides, counting their tiles.

A TFRecord's slide is its file name without ``.tfrecords`` (Slideflow's convention). Tile counts
come from the ``.index.npz`` beside each file, built when missing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from jaxwsi.dataset.errors import DatasetError
from jaxwsi.io import load_indexes

log = logging.getLogger(__name__)

SUFFIX = ".tfrecords"
TFRecordSource = str | os.PathLike | Iterable[str | os.PathLike]


def slide_name(path: str | os.PathLike) -> str:
    """The slide a TFRecord holds, from its file name."""
    name = Path(path).name
    return name[: -len(SUFFIX)] if name.endswith(SUFFIX) else Path(name).stem


def find_tfrecords(source: TFRecordSource) -> dict[str, str]:
    """Slide name → TFRecord path, from a folder (its ``*.tfrecords``) or a list of paths.

    A missing folder or file, or two files for one slide, is an error.
    """
    if isinstance(source, str | os.PathLike):
        folder = Path(source)
        if not folder.is_dir():
            raise DatasetError(f"TFRecord folder not found: {folder}")
        paths = sorted(folder.glob(f"*{SUFFIX}"))
        if not paths:
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
    files, in parallel). A malformed TFRecord raises `jaxwsi.io.TFRecordError` naming it."""
    paths = list(paths)
    return {path: len(records) for path, records in zip(paths, load_indexes(paths), strict=True)}
