"""A project folder's settings.json, in jaxwsi's layout or Slideflow's, as one `ProjectSettings`.

jaxwsi's settings.json::

    {"name", "annotations", "slides", "tfrecords", "models"}

Slideflow's (``slideflow.Project``) names a dataset configuration and the sources used from it::

    settings.json  {"name", "annotations", "dataset_config": "./datasets.json",
                    "sources": ["source1"], "models_dir": "./models", "eval_dir": "./eval"}
    datasets.json  {"source1": {"slides": ..., "roi": ..., "tiles": ..., "tfrecords": ...}}

Both become a list of `Source` (jaxwsi's layout is one source named after the project). Paths are
relative to the project folder unless absolute (Slideflow writes ``./x`` for those). Reading
never writes anything: a Slideflow project is opened as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jaxwsi.errors import JaxwsiError
from jaxwsi.messages import name_some

SETTINGS_FILE = "settings.json"
JAXWSI_KEYS = ("name", "annotations", "slides", "tfrecords", "models")
SLIDEFLOW_KEYS = ("annotations", "dataset_config", "sources")


class ProjectError(JaxwsiError, ValueError):
    """A project folder's settings are missing, unreadable or incomplete."""


@dataclass(frozen=True)
class Source:
    """One collection of slides and the TFRecords extracted from them."""

    name: str
    slides: Path | None  # folder of whole-slide images
    tfrecords: Path  # root of the {tile_px}px_{tile_um}um/ folders
    roi: Path | None = None  # folder of {slide}.csv / .geojson ROIs


@dataclass(frozen=True)
class ProjectSettings:
    """What a project folder's settings say, with every path resolved."""

    name: str
    annotations: Path
    sources: tuple[Source, ...]
    models: Path
    layout: str  # "jaxwsi" or "slideflow"


def read_settings(root: Path) -> tuple[dict[str, Any], ProjectSettings]:
    """The raw settings.json object and what it means; `ProjectError` names the file at fault."""
    path = root / SETTINGS_FILE
    if not path.is_file():
        raise ProjectError(f"not a project: {path} not found")
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise ProjectError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    if "dataset_config" in raw:
        return raw, _slideflow_settings(root, path, raw)
    _require(path, raw, JAXWSI_KEYS)
    source = Source(
        name=str(raw["name"]),
        slides=_path(root, raw["slides"]),
        tfrecords=_required_path(root, raw["tfrecords"], path, "tfrecords"),
    )
    return raw, ProjectSettings(
        name=str(raw["name"]),
        annotations=_required_path(root, raw["annotations"], path, "annotations"),
        sources=(source,),
        models=_required_path(root, raw["models"], path, "models"),
        layout="jaxwsi",
    )


def _slideflow_settings(root: Path, path: Path, raw: dict[str, Any]) -> ProjectSettings:
    _require(path, raw, SLIDEFLOW_KEYS)
    config_path = _required_path(root, raw["dataset_config"], path, "dataset_config")
    if not config_path.is_file():
        raise ProjectError(f"{path}: its dataset_config {config_path} does not exist")
    config = _read_json(config_path)
    if not isinstance(config, dict):
        raise ProjectError(f"{config_path}: expected a JSON object of dataset sources")
    wanted = [raw["sources"]] if isinstance(raw["sources"], str) else list(raw["sources"])
    missing = [s for s in wanted if s not in config]
    if missing:
        raise ProjectError(
            f"{path}: source(s) {name_some(missing)} are not in {config_path} "
            f"(it has {name_some(sorted(config)) or 'none'})"
        )
    if not wanted:
        raise ProjectError(f"{path}: 'sources' lists no dataset source of {config_path}")
    sources = []
    for name in wanted:
        entry = config[name]
        if not isinstance(entry, dict) or not entry.get("tfrecords"):
            raise ProjectError(f"{config_path}: source {name!r} has no 'tfrecords' folder")
        sources.append(
            Source(
                name=name,
                slides=_path(root, entry.get("slides")),
                tfrecords=_required_path(root, entry["tfrecords"], config_path, "tfrecords"),
                roi=_path(root, entry.get("roi")),
            )
        )
    return ProjectSettings(
        name=str(raw.get("name", root.resolve().name)),
        annotations=_required_path(root, raw["annotations"], path, "annotations"),
        sources=tuple(sources),
        models=_path(root, raw.get("models_dir", "./models")) or root / "models",
        layout="slideflow",
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProjectError(f"{path}: cannot read JSON: {error}") from None


def _require(path: Path, raw: dict[str, Any], keys: tuple[str, ...]) -> None:
    missing = [k for k in keys if k not in raw]
    if missing:
        raise ProjectError(f"{path}: missing setting(s) {missing}")


def _path(root: Path, value: object) -> Path | None:
    if value is None or value == "":
        return None
    path = Path(str(value))
    return path if path.is_absolute() else root / path


def _required_path(root: Path, value: object, where: Path, key: str) -> Path:
    path = _path(root, value)
    if path is None:
        raise ProjectError(f"{where}: setting {key!r} is empty")
    return path
