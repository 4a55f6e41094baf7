"""Project: a folder that holds the settings, annotations, TFRecords, models and saved splits.

Layout (paths in settings.json are relative to the project folder unless absolute)::

    root/
      settings.json     {"name", "annotations", "slides", "tfrecords", "models"}
      annotations.csv   one row per slide: patient, slide, outcome columns[, dataset, site]
      splits.json       saved train/validation splits (`Dataset.split` reuses them)
      tfrecords/{tile_px}px_{tile_um}um/{slide}.tfrecords   (or {tile_px}px_10x for magnification)
      models/

A Slideflow project folder (settings.json naming a ``dataset_config`` and ``sources``, see
`jaxwsi.project_settings`) opens as a Project too, unchanged: its sources' slides and TFRecords,
its annotations and its splits.json (shared with Slideflow both ways, `jaxwsi.dataset.splits_file`).

`Project` is a thin facade over `jaxwsi.dataset`, `jaxwsi.slide` and the trainers; heavy modules
are imported by the methods that need them, so ``jaxwsi project create`` stays quick.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jaxwsi.atomic import write_text_atomic
from jaxwsi.messages import name_some
from jaxwsi.project_settings import SETTINGS_FILE, ProjectSettings, Source, read_settings

if TYPE_CHECKING:
    import pandas as pd

    from jaxwsi.dataset.annotations import AnnotationsSource
    from jaxwsi.dataset.dataset import Dataset
    from jaxwsi.dataset.filters import Filters

log = logging.getLogger(__name__)

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
    csv = "patient,slide\n"
    if annotations is not None:
        from jaxwsi.dataset.annotations import load_annotations

        csv = load_annotations(annotations).to_csv(index=False)
    root.mkdir(parents=True, exist_ok=True)
    (root / "tfrecords").mkdir(exist_ok=True)
    (root / "models").mkdir(exist_ok=True)
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
    """Open an existing project folder (jaxwsi's layout or Slideflow's)."""
    return Project(root)


class Project:
    """A project folder (see the module docstring); create one with `create_project`."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        raw, parsed = read_settings(self.root)
        self.settings: dict[str, Any] = raw
        self._parsed: ProjectSettings = parsed

    @property
    def name(self) -> str:
        return self._parsed.name

    @property
    def layout(self) -> str:
        """``"jaxwsi"`` or ``"slideflow"``: which settings.json this folder has."""
        return self._parsed.layout

    @property
    def sources(self) -> tuple[Source, ...]:
        """The slide/TFRecord sources (one in jaxwsi's layout; Slideflow's ``sources``)."""
        return self._parsed.sources

    @property
    def annotations_path(self) -> Path:
        return self._parsed.annotations

    @property
    def slides_dir(self) -> Path | None:
        """The first source's slides folder."""
        return self.sources[0].slides

    @property
    def tfrecords_dir(self) -> Path:
        """The first source's TFRecords root (where `extract_tiles` writes)."""
        return self.sources[0].tfrecords

    @property
    def models_dir(self) -> Path:
        return self._parsed.models

    @property
    def splits_path(self) -> Path:
        return self.root / SPLITS_FILE

    def annotations(self) -> pd.DataFrame:
        """The validated annotations table."""
        from jaxwsi.dataset.annotations import load_annotations

        return load_annotations(self.annotations_path)

    def tfrecord_dir(self, tile_px: int, tile_um: int | float | str) -> Path:
        """The first source's folder of TFRecords of one tile size."""
        from jaxwsi.slide.grid import tile_size_label

        return self.tfrecords_dir / tile_size_label(tile_px, tile_um)

    def dataset(
        self,
        tile_px: int,
        tile_um: int | float | str,
        *,
        filters: Filters | None = None,
        filter_blank: Iterable[str] = (),
        min_tiles: int = 0,
    ) -> Dataset:
        """The project's annotated slides with TFRecords of this tile size (from every source);
        its `Dataset.split` saves to and reuses the project's splits.json."""
        from jaxwsi.dataset.dataset import Dataset
        from jaxwsi.dataset.tfrecord_files import tile_size_folder
        from jaxwsi.slide.grid import tile_size_label

        folders = [tile_size_folder(s.tfrecords, tile_px, tile_um) for s in self.sources]
        found = [f for f in folders if f is not None]
        if not found:
            roots = name_some([str(s.tfrecords) for s in self.sources])
            raise FileNotFoundError(
                f"no TFRecords for {tile_size_label(tile_px, tile_um)}: no such folder in {roots} "
                "(run Project.extract_tiles first)"
            )
        tfrecords: Path | list[Path] = found[0]
        if len(found) > 1:
            tfrecords = sorted(p for folder in found for p in folder.glob("*.tfrecords"))
        return Dataset(
            self.annotations_path,
            tfrecords,
            tile_px=tile_px,
            tile_um=tile_um,
            filters=filters,
            filter_blank=filter_blank,
            min_tiles=min_tiles,
            splits=self.splits_path,
        )

    def slide_paths(self, source: Source | None = None) -> list[Path]:
        """Whole-slide images in the slides folder(s) that have an annotation row (by file
        stem), from one source or all of them."""
        from jaxwsi.slide.extract import SLIDE_EXTENSIONS
        from jaxwsi.slide.wsi import slide_name

        sources = [source] if source is not None else list(self.sources)
        folders = [s.slides for s in sources if s.slides is not None]
        if not folders:
            raise ValueError(f"project {self.root} has no slides folder in its settings")
        annotated = set(self.annotations()["slide"])
        found = {
            slide_name(p): p
            for folder in folders
            for p in sorted(folder.iterdir())
            if p.suffix.lower() in SLIDE_EXTENSIONS
        }
        if source is None:
            missing = sorted(annotated - set(found))
            if missing:
                log.warning(
                    "%d annotated slide(s) have no image in %s: %s",
                    len(missing),
                    name_some([str(f) for f in folders]),
                    name_some(missing),
                )
        return [found[s] for s in sorted(annotated & set(found))]

    def extract_tiles(
        self, tile_px: int, tile_um: int | float | str, **options: Any
    ) -> pd.DataFrame:
        """Extract tiles of the annotated slides into each source's ``tfrecords/{tile size}/``
        with `jaxwsi.slide.extract_tiles` and return its report rows; ``options`` (QC, ROIs,
        num_workers, ...) go to it unchanged (a Slideflow source's ``roi`` folder is the default
        ``roi_dir``)."""
        import pandas as pd

        from jaxwsi.slide.extract import extract_tiles

        if len(self.sources) == 1 and self.sources[0].roi is None:
            return extract_tiles(
                self.slide_paths(), self.tfrecords_dir, tile_px, tile_um, **options
            )
        self.slide_paths()  # warns about annotated slides without an image in any source
        reports = []
        for source in self.sources:
            if source.slides is None or not (paths := self.slide_paths(source)):
                continue
            kwargs = dict(options)
            if source.roi is not None and source.roi.is_dir():
                kwargs.setdefault("roi_dir", source.roi)
            reports.append(extract_tiles(paths, source.tfrecords, tile_px, tile_um, **kwargs))
        if not reports:
            raise ValueError(f"project {self.root}: no annotated slide images in any source")
        return pd.concat(reports, ignore_index=True)

    def generate_feature_bags(
        self, extractor: Any, dataset: Dataset, outdir: str | os.PathLike = "auto", **options: Any
    ) -> pd.DataFrame:
        """Feature bags of ``dataset``'s slides (`jaxwsi.mil.extract_features`) into ``outdir``
        (``"auto"``: ``bags/{extractor}_{tile size}`` in the project)."""
        from jaxwsi.mil.project import generate_feature_bags

        return generate_feature_bags(self, extractor, dataset, outdir, **options)

    def train_mil(
        self, config: Any, outcomes: str | Sequence[str], bags: Any, **options: Any
    ) -> list[Any]:
        """MIL training into ``models/mil/`` (`jaxwsi.mil.project.project_train_mil`): one run
        with ``train_dataset``/``val_dataset``, or cross-validation over ``dataset``'s saved
        patient-level splits."""
        from jaxwsi.mil.project import project_train_mil

        return project_train_mil(self, config, outcomes, bags, **options)

    # ---- experiments: training plans, evaluation, pictures, search (jaxwsi.experiment) ----

    def train(self, outcomes: str | list[str], params: Any, **options: Any) -> dict[str, Any]:
        """Train tile models on a validation plan (`jaxwsi.experiment.runner.train_plan`): each
        of ``params`` (a ModelParams, a list or a dict name → ModelParams, or a sweep file path)
        on every run of the plan, in ``models/{id}-{outcomes}-{hp}[-kfold{k}]/``, logged in
        ``results_log.csv``. ``options`` are `jaxwsi.experiment.runner.TrainRequest` fields
        (filters, val_strategy, val_k_fold, val_k, val_fraction, max_tiles, min_tiles,
        input_header, resume, from_wsi, executor, parallel, ...). Returns model → results."""
        from jaxwsi.experiment.runner import TrainRequest, train_plan
        from jaxwsi.experiment.sweep import as_hp_dict

        return train_plan(self, as_hp_dict(params), TrainRequest(outcomes=outcomes, **options))

    def evaluate(
        self,
        model: str | os.PathLike,
        outcomes: str | list[str] | None = None,
        *,
        dataset: Dataset | None = None,
        filters: Any = None,
    ) -> dict[str, Any]:
        """Metrics of a trained model folder on ``dataset`` (default: the project's slides at
        the model's tile size, ``filters`` applied); writes
        ``{tile,slide,patient}_predictions_eval.parquet`` into the model folder."""
        from jaxwsi.experiment.evaluate import evaluate_model

        return evaluate_model(self, model, outcomes, dataset=dataset, filters=filters)

    def predict(
        self,
        model: str | os.PathLike,
        dataset: Dataset | None = None,
        *,
        filters: Any = None,
        outdir: str | os.PathLike | None = None,
    ) -> list[Path]:
        """Predictions of a trained model folder without labels: the
        ``{tile,slide,patient}_predictions.parquet`` paths written (default: the model folder)."""
        from jaxwsi.experiment.evaluate import predict_model

        return predict_model(self, model, dataset=dataset, filters=filters, outdir=outdir)

    def generate_heatmaps(
        self,
        model: str | os.PathLike,
        *,
        filters: Any = None,
        outdir: str | os.PathLike | None = None,
        progress: bool = True,
    ) -> list[Path]:
        """Per slide, the model's tile predictions over the thumbnail, one PNG per outcome
        class (default folder: ``{model}/heatmaps``); then the model's report.html."""
        from jaxwsi.experiment.evaluate import generate_heatmaps

        return generate_heatmaps(self, model, filters=filters, outdir=outdir, progress=progress)

    def write_report(self, model: str | os.PathLike) -> Path:
        """The model folder's self-contained ``report.html`` (`jaxwsi.experiment.report`)."""
        from jaxwsi.experiment.report import write_report

        return write_report(Path(model))

    def create_hp_sweep(
        self, filename: str | os.PathLike = "sweep.json", label: str | None = None, **kwargs: Any
    ) -> Path:
        """Write a sweep file (Slideflow's format) of the grid product of every list-valued
        ModelParams argument except ``epochs``; a relative ``filename`` is in the project."""
        from jaxwsi.experiment.sweep import sweep_grid, write_hp_sweep

        path = Path(filename)
        return write_hp_sweep(
            path if path.is_absolute() else self.root / path, sweep_grid(label, **kwargs)
        )

    def smac_search(
        self,
        outcomes: str | list[str],
        params: Any,
        smac_configspace: Any,
        *,
        exp_label: str = "SMAC",
        smac_limit: int = 10,
        smac_metric: Any = "tile_auc",
        smac_replicates: int = 1,
        **options: Any,
    ) -> Any:
        """SMAC3 search around ``params`` (a ModelParams) over ``smac_configspace`` (see
        `jaxwsi.util.create_search_space`); ``options`` as for `train` (``parallel`` proposals
        per round run as parallel trials). Returns the best configuration, its cost and the
        history DataFrame (`SearchResult`), also saved as CSV in ``models/{id}-{exp_label}``."""
        from jaxwsi.experiment.runner import TrainRequest
        from jaxwsi.experiment.search import smac_search

        return smac_search(
            self,
            params,
            smac_configspace,
            TrainRequest(outcomes=outcomes, **options),
            exp_label=exp_label,
            smac_limit=smac_limit,
            smac_metric=smac_metric,
            smac_replicates=smac_replicates,
        )
