"""Evaluation, prediction and heatmaps of a trained model folder (`Project.evaluate`,
`Project.predict`, `Project.generate_heatmaps`).

A model folder is enough: ``params.json`` rebuilds the model and its preprocessing (the tile
size, normalizer fit, outcomes, whether it trained from slides) and the latest checkpoint in
``checkpoints/`` holds its weights (`jaxwsi.train.load_trainer`). The default dataset is the
project's slides at the model's tile size, from TFRecords or, for a ``from_wsi`` model, from
the slides.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jaxwsi.dataset.dataset import Dataset
from jaxwsi.dataset.errors import DatasetError
from jaxwsi.dataset.labels import as_headers
from jaxwsi.errors import JaxwsiError

if TYPE_CHECKING:
    from jaxwsi.project import Project
    from jaxwsi.train.trainer import Trainer

HEATMAP_DIR = "heatmaps"


class ModelFolderError(JaxwsiError, FileNotFoundError):
    """A model folder that is missing or lacks what rebuilding the model needs."""


def model_folder(project: Project, model: str | os.PathLike) -> Path:
    """The model folder ``model`` (a path, or a folder name in the project's models/), checked
    to hold params.json and a checkpoint."""
    path = Path(model)
    if not path.is_dir() and (project.models_dir / path).is_dir():
        path = project.models_dir / path
    if not path.is_dir():
        raise ModelFolderError(f"model folder not found: {model} (nor in {project.models_dir})")
    if not (path / "params.json").is_file():
        raise ModelFolderError(f"{path} is not a model folder: it has no params.json")
    checkpoints = path / "checkpoints"
    if not checkpoints.is_dir() or not any(p.name.isdigit() for p in checkpoints.iterdir()):
        raise ModelFolderError(
            f"{path} has no checkpoint in {checkpoints}: was its training stopped before the "
            "first save?"
        )
    return path


def load(project: Project, model: str | os.PathLike) -> tuple[Path, Trainer, dict[str, Any]]:
    """(folder, trainer with the trained model, params.json)."""
    from jaxwsi.train.outputs import read_params
    from jaxwsi.train.trainer import load_trainer

    folder = model_folder(project, model)
    return folder, load_trainer(folder, progress=False), read_params(folder)


def model_dataset(
    project: Project, params: dict[str, Any], dataset: Dataset | None, filters: Any
) -> Dataset:
    """``dataset`` or the project's at the model's tile size (from slides for a from_wsi
    model), with ``filters``; an empty result is an error naming the filters."""
    if dataset is None:
        from jaxwsi.experiment.runner import TrainRequest, project_dataset
        from jaxwsi.train.params import ModelParams

        hp = ModelParams.from_dict(params["hp"])
        request = TrainRequest(
            outcomes=params["outcomes"], from_wsi=bool(params.get("from_wsi", False))
        )
        dataset = project_dataset(project, hp, request)
    if filters:
        dataset = dataset.filter(filters)
    if len(dataset) == 0:
        raise DatasetError(f"no slides to evaluate after filters {dict(filters or {})}")
    return dataset


def evaluate_model(
    project: Project,
    model: str | os.PathLike,
    outcomes: str | list[str] | None = None,
    *,
    dataset: Dataset | None = None,
    filters: Any = None,
) -> dict[str, Any]:
    """The model's metrics on the dataset; ``{tile,slide,patient}_predictions_eval.parquet``
    written into the model folder. ``outcomes`` must be the model's (default)."""
    folder, trainer, params = load(project, model)
    if outcomes is not None and as_headers(outcomes) != list(params["outcomes"]):
        raise DatasetError(
            f"{folder} was trained for outcome(s) {params['outcomes']}, not {as_headers(outcomes)}"
        )
    return trainer.evaluate(model_dataset(project, params, dataset, filters))


def predict_model(
    project: Project,
    model: str | os.PathLike,
    *,
    dataset: Dataset | None = None,
    filters: Any = None,
    outdir: str | os.PathLike | None = None,
) -> list[Path]:
    """Write ``{tile,slide,patient}_predictions.parquet`` (no labels needed) into ``outdir``
    (default: the model folder); returns their paths."""
    folder, trainer, params = load(project, model)
    target = Path(outdir) if outdir is not None else folder
    trainer.predict(model_dataset(project, params, dataset, filters), target)
    return [target / f"{level}_predictions.parquet" for level in ("tile", "slide", "patient")]


def generate_heatmaps(
    project: Project,
    model: str | os.PathLike,
    *,
    filters: Any = None,
    outdir: str | os.PathLike | None = None,
    progress: bool = True,
) -> list[Path]:
    """Predict every tile of each slide (no clipping), draw one heatmap PNG per outcome class
    per slide into ``outdir`` (default ``{model}/heatmaps``), then write the model's
    report.html; returns the PNG paths."""
    from jaxwsi.experiment.heatmap import slide_heatmaps
    from jaxwsi.experiment.report import write_report
    from jaxwsi.train.progress import Progress

    folder, trainer, params = load(project, model)
    dataset = model_dataset(project, params, None, filters).unclip()
    tiles = trainer.predict(dataset, folder / HEATMAP_DIR)["tile"]
    target = Path(outdir) if outdir is not None else folder / HEATMAP_DIR
    slide_files = {p.stem: p for p in project.slide_paths()}
    labels = params.get("outcome_labels") or {}
    classes = {o: [str(c) for c in labels[o]] for o in params["outcomes"] if labels.get(o)}
    written: list[Path] = []
    groups = dict(tuple(tiles.groupby("slide")))
    with Progress(len(groups), "heatmaps", unit="slide", disable=not progress) as bar:
        for slide, rows in groups.items():
            if slide not in slide_files:
                raise DatasetError(f"no slide image for {slide!r} in {project.slides_dir}")
            written += slide_heatmaps(
                slide_files[slide],
                rows,
                tile_px=params["tile_px"],
                tile_um=params["tile_um"],
                outdir=target,
                class_names=classes,
            )
            bar.update(1)
    write_report(folder)
    return written
