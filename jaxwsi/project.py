"""Project: a folder that holds the settings, annotations, TFRecords, models and saved splits.

Layout (paths in settings.json are relative to the project folder unless absolute)::

    root/
      settings.json     {"name", "annotations", "slides", "tfrecords", "models"}
      annotations.csv   one row per slide: patient, slide, outcome columns[, dataset, site]
      splits.json       saved train/validation splits (`Dataset.split` reuses them)
      tfrecords/{tile_px}px_{tile_um}um/{slide}.tfrecords   (or {tile_px}px_10x for magnification)
      models/
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from jaxwsi.atomic import write_text_atomic
from jaxwsi.dataset.annotations import AnnotationsSource, load_annotations
from jaxwsi.dataset.dataset import Dataset
from jaxwsi.dataset.filters import Filters
from jaxwsi.messages import name_some
from jaxwsi.slide import extract_tiles, slide_name, tile_size_label
from jaxwsi.slide.extract import SLIDE_EXTENSIONS

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"
SETTINGS_KEYS = ("name", "annotations", "slides", "tfrecords", "models")
SPLITS_FILE = "splits.json"


def create_project(
    root: str | os.PathLike,
    *,
    annotations: AnnotationsSource | None = None,
    slides: str | os.PathLike | None = None,
) -> Project:
    """Create a project folder and return it.

    ``annotations`` (CSV path or DataFrame) is validated and copied to ``annotations.csv``;
    without it the file has only the ``patient,slide`` header. ``slides`` is the folder of
    whole-slide images, recorded as an absolute path. An existing project is an error.
    """
    root = Path(root)
    settings_path = root / SETTINGS_FILE
    if settings_path.exists():
        raise FileExistsError(f"a project already exists at {root} ({settings_path})")
    slides_dir = None
    if slides is not None:
        slides_dir = Path(slides).resolve()
        if not slides_dir.is_dir():
            raise NotADirectoryError(f"slides folder not found: {slides_dir}")
    table = load_annotations(annotations) if annotations is not None else None
    root.mkdir(parents=True, exist_ok=True)
    (root / "tfrecords").mkdir(exist_ok=True)
    (root / "models").mkdir(exist_ok=True)
    csv = table.to_csv(index=False) if table is not None else "patient,slide\n"
    write_text_atomic(root / "annotations.csv", csv)
    if not (root / SPLITS_FILE).exists():
        write_text_atomic(root / SPLITS_FILE, "[]\n")
    settings = {
        "name": root.resolve().name,
        "annotations": "./annotations.csv",
        "slides": str(slides_dir) if slides_dir is not None else None,
        "tfrecords": "./tfrecords",
        "models": "./models",
    }
    write_text_atomic(settings_path, json.dumps(settings, indent=1) + "\n")
    log.info("created project %s", root)
    return Project(root)


def load_project(root: str | os.PathLike) -> Project:
    """Open an existing project folder."""
    return Project(root)


class Project:
    """A project folder (see the module docstring); create one with `create_project`."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        settings_path = self.root / SETTINGS_FILE
        if not settings_path.is_file():
            raise FileNotFoundError(f"not a project: {settings_path} not found")
        try:
            settings = json.loads(settings_path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{settings_path}: invalid JSON: {error}") from error
        missing = [k for k in SETTINGS_KEYS if not isinstance(settings, dict) or k not in settings]
        if missing:
            raise ValueError(f"{settings_path}: missing setting(s) {missing}")
        self.settings: dict[str, Any] = settings

    def _path(self, key: str) -> Path | None:
        value = self.settings[key]
        if value is None:
            return None
        path = Path(value)
        return path if path.is_absolute() else self.root / path

    @property
    def name(self) -> str:
        return str(self.settings["name"])

    @property
    def annotations_path(self) -> Path:
        return self._path("annotations")  # type: ignore[return-value]

    @property
    def slides_dir(self) -> Path | None:
        return self._path("slides")

    @property
    def tfrecords_dir(self) -> Path:
        return self._path("tfrecords")  # type: ignore[return-value]

    @property
    def models_dir(self) -> Path:
        return self._path("models")  # type: ignore[return-value]

    @property
    def splits_path(self) -> Path:
        return self.root / SPLITS_FILE

    def annotations(self) -> pd.DataFrame:
        """The validated annotations table."""
        return load_annotations(self.annotations_path)

    def tfrecord_dir(self, tile_px: int, tile_um: int | str) -> Path:
        """The folder of TFRecords of one tile size."""
        return self.tfrecords_dir / tile_size_label(tile_px, tile_um)

    def dataset(
        self,
        tile_px: int,
        tile_um: int | str,
        *,
        filters: Filters | None = None,
        filter_blank: Iterable[str] = (),
        min_tiles: int = 0,
    ) -> Dataset:
        """The project's annotated slides with TFRecords of this tile size; its `Dataset.split`
        saves to and reuses the project's splits.json."""
        folder = self.tfrecord_dir(tile_px, tile_um)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"no TFRecords for {tile_size_label(tile_px, tile_um)}: {folder} does not exist "
                "(run Project.extract_tiles first)"
            )
        return Dataset(
            self.annotations_path,
            folder,
            tile_px=tile_px,
            tile_um=tile_um,
            filters=filters,
            filter_blank=filter_blank,
            min_tiles=min_tiles,
            splits=self.splits_path,
        )

    def slide_paths(self) -> list[Path]:
        """Whole-slide images in the slides folder that have an annotation row (by file stem)."""
        if self.slides_dir is None:
            raise ValueError(f"project {self.root} has no slides folder in its settings")
        annotated = set(self.annotations()["slide"])
        found = {
            slide_name(p): p
            for p in sorted(self.slides_dir.iterdir())
            if p.suffix.lower() in SLIDE_EXTENSIONS
        }
        missing = sorted(annotated - set(found))
        if missing:
            log.warning(
                "%d annotated slide(s) have no image in %s: %s",
                len(missing),
                self.slides_dir,
                name_some(missing),
            )
        return [found[s] for s in sorted(annotated & set(found))]

    def extract_tiles(self, tile_px: int, tile_um: int | str, **options: Any) -> pd.DataFrame:
        """Extract tiles of the annotated slides into ``tfrecords/{tile size}/`` with
        `jaxwsi.slide.extract_tiles` and return its report rows; ``options`` (QC, ROIs,
        num_workers, ...) go to it unchanged."""
        return extract_tiles(self.slide_paths(), self.tfrecords_dir, tile_px, tile_um, **options)
