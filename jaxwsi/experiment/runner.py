"""`Project.train`'s engine: every hyperparameter set × every run of the validation plan becomes
a trial (one model folder), trials run as the `Execution` says, and the results land in
``results_log.csv`` of the project and of each model folder.

A trial's folder is ``models/{id}-{outcomes}-{hp_name}[-kfold{k}]``. It is finished when it
holds ``results.json`` (written last, atomically). With ``resume=True`` a finished trial is
kept (its results read back) and an unfinished one continues from its latest checkpoint in its
folder; without it, every trial gets a new folder.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jaxwsi.atomic import write_text_atomic
from jaxwsi.dataset.dataset import Dataset
from jaxwsi.dataset.errors import DatasetError
from jaxwsi.dataset.labels import as_headers
from jaxwsi.errors import JaxwsiError
from jaxwsi.experiment.model_dir import find_model_dir, model_name, new_model_dir
from jaxwsi.experiment.parallel import Execution, run_trials
from jaxwsi.experiment.plan import Run, ValidationPlan, plan_runs
from jaxwsi.experiment.results_log import RESULTS_LOG, update_results_log
from jaxwsi.messages import did_you_mean

if TYPE_CHECKING:
    from jaxwsi.project import Project
    from jaxwsi.train.params import ModelParams

log = logging.getLogger(__name__)

FINISHED = "results.json"


@dataclass
class Trial:
    """One model to train, everything a (possibly remote) process needs; pickles."""

    name: str
    outdir: str
    hp: dict[str, Any]
    outcomes: list[str]
    training: Dataset
    validation: Dataset | None
    config: dict[str, Any]
    resume: bool = False
    options: dict[str, Any] = field(default_factory=dict)


class TrainingStopped(JaxwsiError):
    """A trial stopped by Ctrl-C / SIGTERM (its checkpoint saved): the plan stops too."""


def run_trial(trial: Trial) -> dict[str, Any]:
    """Train one model with the tile trainer (`jaxwsi.train.build_trainer`); write
    ``results.json``; return the results (``{"epoch{N}": metrics}``)."""
    from jaxwsi.train.params import ModelParams
    from jaxwsi.train.trainer import build_trainer

    outdir = Path(trial.outdir)
    finished = outdir / FINISHED
    if trial.resume and finished.is_file():
        return json.loads(finished.read_text())
    hp = ModelParams.from_dict(trial.hp)
    trainer = build_trainer(hp, outdir, trial.outcomes, config=trial.config, **trial.options)
    results = trainer.train(trial.training, trial.validation, resume=trial.resume)
    if not results:
        raise TrainingStopped(
            f"training of {outdir} was stopped (checkpoint saved): run the same plan again "
            "with resume=True to continue it"
        )
    results = json.loads(json.dumps(results, default=float))
    write_text_atomic(finished, json.dumps(results, indent=1) + "\n")
    return results


def trainer_options(request: TrainRequest, hp: ModelParams) -> dict[str, Any]:
    """`build_trainer` options of a request: a survival model's event column is the first
    ``input_header`` column (as in Slideflow), the other columns are clinical inputs."""
    options = dict(request.trainer_options)
    headers = as_headers(request.input_header) if request.input_header else []
    if hp.model_type() == "survival":
        if not headers:
            raise DatasetError(
                f"a survival model (loss {hp.loss!r}) needs its event column as input_header"
            )
        options["event_header"], headers = headers[0], headers[1:]
    if headers:
        options["input_header"] = headers
    return options


def check_outcomes(dataset: Dataset, outcomes: Sequence[str], where: str) -> None:
    """Every outcome column must be in the annotations; the error names the unknown ones."""
    columns = list(dataset.annotations.columns)
    unknown = [o for o in outcomes if o not in columns]
    if unknown:
        hints = "".join(did_you_mean(o, columns) for o in unknown)
        raise DatasetError(
            f"unknown outcome column(s) {unknown} in {where}; its columns are {columns}{hints}"
        )


@dataclass(frozen=True)
class TrainRequest:
    """Everything `Project.train` takes besides ``params``, with Slideflow's names and each
    default here only (the CLI's config keys are these fields too).

    ``val_*``: the validation plan (`ValidationPlan`); ``executor``, ``parallel``,
    ``devices_per_trial``, ``slurm``, ``imports``: where trials run (`Execution`);
    ``trainer_options``: extra keyword arguments for `build_trainer`."""

    outcomes: Sequence[str]
    filters: Mapping[str, Any] | None = None
    dataset: Dataset | None = None
    val_dataset: Dataset | None = None
    val_strategy: str = "k-fold"
    val_k_fold: int = 3
    val_k: int | Sequence[int] | None = None
    val_fraction: float | None = None
    val_seed: int = 0
    val_manual_column: str | None = None
    max_tiles: int = 0
    min_tiles: int = 0
    input_header: str | Sequence[str] | None = None
    resume: bool = False
    from_wsi: bool = False
    executor: str = "inline"
    parallel: int | None = None
    devices_per_trial: int = 1
    slurm: Mapping[str, Any] = field(default_factory=dict)
    imports: Sequence[str] = ()
    trainer_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcomes", as_headers(self.outcomes))
        self.plan  # noqa: B018 - check the plan and the execution now
        self.execution  # noqa: B018

    @property
    def plan(self) -> ValidationPlan:
        return ValidationPlan(
            strategy=self.val_strategy,
            k_fold=self.val_k_fold,
            k=self.val_k,
            fraction=self.val_fraction,
            seed=self.val_seed,
            manual_column=self.val_manual_column,
        )

    @property
    def execution(self) -> Execution:
        return Execution(
            self.executor, self.parallel, self.devices_per_trial, None, self.slurm, self.imports
        )


def project_dataset(project: Project, hp: ModelParams, request: TrainRequest) -> Dataset:
    """The project's dataset at the hyperparameters' tile size (TFRecords, or tile references
    when ``from_wsi``), filtered and clipped as asked; errors for unknown outcome columns and
    for nothing left after the filters."""
    if request.dataset is not None:
        dataset = request.dataset
    elif request.from_wsi:
        from jaxwsi.experiment.from_wsi import REFERENCE_DIR, wsi_dataset
        from jaxwsi.slide import tile_size_label
        from jaxwsi.slide.extract import ExtractionSettings

        settings = ExtractionSettings(tile_px=hp.tile_px, tile_um=hp.tile_um, qc="otsu")
        dataset = wsi_dataset(
            project.annotations_path,
            project.slide_paths(),
            project.root / REFERENCE_DIR / tile_size_label(hp.tile_px, hp.tile_um),
            settings,
            splits=project.splits_path,
        )
    else:
        dataset = project.dataset(hp.tile_px, hp.tile_um)
    where = str(project.annotations_path)
    check_outcomes(dataset, request.outcomes, where)
    if request.filters or request.min_tiles:
        dataset = dataset.filter(request.filters, min_tiles=request.min_tiles or None)
    if len(dataset) == 0:
        raise DatasetError(
            f"no slides left in {where} after filters {dict(request.filters or {})} and "
            f"min_tiles={request.min_tiles} (with tiles at {hp.tile_px}px/{hp.tile_um}um)"
        )
    return dataset.clip(request.max_tiles) if request.max_tiles else dataset


def _config(project: Project, request: TrainRequest, run: Run, hp_name: str) -> dict[str, Any]:
    """What params.json records about the experiment (besides what the trainer writes)."""
    plan = request.plan
    return {
        "project": project.name,
        "model_name": model_name(request.outcomes, hp_name, run.fold),
        "outcomes": list(request.outcomes),
        "input_features": as_headers(request.input_header) if request.input_header else None,
        "annotations": str(project.annotations_path),
        "filters": dict(request.filters or {}),
        "max_tiles": request.max_tiles,
        "min_tiles": request.min_tiles,
        "from_wsi": request.from_wsi,
        "validation_strategy": "fixed-dataset" if request.val_dataset else plan.strategy,
        "validation_fraction": plan.fraction,
        "validation_k_fold": plan.k_fold,
        "k_fold_i": run.fold,
    }


def _trial_dir(models_dir: Path, name: str, resume: bool) -> tuple[Path, bool]:
    """(folder, resumed): the newest folder of this name when resuming, else a new one."""
    if resume:
        found = find_model_dir(models_dir, name)
        if found is not None:
            return found, True
    return new_model_dir(models_dir, name), False


def train_plan(
    project: Project, hp_dict: Mapping[str, ModelParams], request: TrainRequest
) -> dict[str, dict[str, Any]]:
    """Train every hyperparameter set on every run of the plan; returns model name → results
    (the trainer's validation metrics per epoch)."""
    outcomes = list(request.outcomes)
    trials: list[Trial] = []
    for hp_name, hp in hp_dict.items():
        dataset = project_dataset(project, hp, request)
        runs = plan_runs(
            dataset,
            outcomes,
            request.plan,
            use_float=hp.model_type() != "classification",
            val_dataset=request.val_dataset,
        )
        options = trainer_options(request, hp)
        for run in runs:
            name = model_name(outcomes, hp_name, run.fold)
            folder, resumed = _trial_dir(project.models_dir, name, request.resume)
            log.info("%s %s", "resuming" if resumed else "training", folder)
            trials.append(
                Trial(
                    name=name,
                    outdir=str(folder),
                    hp=hp.to_dict(),
                    outcomes=outcomes,
                    training=run.training,
                    validation=run.validation,
                    config={
                        **_config(project, request, run, hp_name),
                        "full_model_name": folder.name,
                    },
                    resume=resumed,
                    options=options,
                )
            )
    execution = dataclasses.replace(request.execution, folder=str(project.models_dir / "submitit"))
    results = run_trials(run_trial, trials, execution)
    by_name = {}
    for trial, result in zip(trials, results, strict=True):
        folder_name = Path(trial.outdir).name
        update_results_log(project.root / RESULTS_LOG, folder_name, result)
        if not (Path(trial.outdir) / RESULTS_LOG).is_file():
            update_results_log(Path(trial.outdir) / RESULTS_LOG, folder_name, result)
        by_name[folder_name] = result
    return by_name
