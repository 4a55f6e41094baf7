"""MIL on a `Project`: feature bags under ``bags/`` and MIL models under ``models/mil/``, with
cross-validation over the project's saved patient-level splits (`Dataset.split`)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from jaxwsi.dataset import Dataset
from jaxwsi.dataset.labels import as_headers
from jaxwsi.mil.bags import BagsSource
from jaxwsi.mil.config import MILConfig
from jaxwsi.mil.extract import extract_features
from jaxwsi.mil.train import train_mil


def bags_dir(project: Any, extractor: Any, dataset: Dataset) -> Path:
    """``bags/{extractor}_{tile_px}px_{tile_um}`` in the project."""
    name = extractor if isinstance(extractor, str) else type(extractor).__name__
    return project.root / "bags" / f"{name}_{dataset.tile_px}px_{dataset.tile_um}"


def generate_feature_bags(
    project: Any,
    extractor: Any,
    dataset: Dataset,
    outdir: str | os.PathLike[str] = "auto",
    **options: Any,
) -> pd.DataFrame:
    """`extract_features` into ``outdir`` (``"auto"``: `bags_dir`)."""
    folder = bags_dir(project, extractor, dataset) if outdir == "auto" else Path(outdir)
    return extract_features(extractor, dataset, folder, **options)


def next_run_dir(parent: Path, label: str) -> Path:
    """``parent/{NNNNN}-{label}`` with the next free number (Slideflow's naming)."""
    taken = [int(m.group(1)) for p in parent.glob("*") if (m := re.match(r"(\d{5})-", p.name))]
    return parent / f"{max(taken, default=-1) + 1:05d}-{label}"


def project_train_mil(
    project: Any,
    config: MILConfig,
    outcomes: str | Sequence[str],
    bags: BagsSource,
    *,
    dataset: Dataset | None = None,
    train_dataset: Dataset | None = None,
    val_dataset: Dataset | None = None,
    val_strategy: str = "k-fold",
    val_k_fold: int = 3,
    k: list[int] | None = None,
    exp_label: str | None = None,
    attention_heatmaps: bool = False,
    **options: Any,
) -> list[pd.DataFrame | None]:
    """One `train_mil` run with ``train_dataset``/``val_dataset``, or one per fold of
    ``dataset.split(outcomes, val_strategy, k_fold=val_k_fold)`` (``k``: the folds to run,
    1-based; continuous outcomes of a regression loss are not stratified) into
    ``models/mil/{NNNNN}-{label}/fold{i}``. Returns each run's predictions."""
    label = exp_label or f"{config.model}-{'-'.join(as_headers(outcomes))}"
    outdir = next_run_dir(project.models_dir / "mil", label)
    slide_paths = _slide_paths(project)
    common = dict(attention_heatmaps=attention_heatmaps, slide_paths=slide_paths, **options)
    if train_dataset is not None:
        return [train_mil(config, train_dataset, val_dataset, outcomes, bags, outdir, **common)]
    if dataset is None:
        raise ValueError("pass dataset= (split into folds) or train_dataset= [and val_dataset=]")
    folds = dataset.split(outcomes, val_strategy, k_fold=val_k_fold, use_float=config.is_regression)
    return [
        train_mil(config, train, val, outcomes, bags, outdir / f"fold{i}", **common)
        for i, (train, val) in enumerate(folds, start=1)
        if k is None or i in k
    ]


def _slide_paths(project: Any) -> dict[str, Path] | None:
    """Slide → image for heatmaps over thumbnails (None when the project has no slides)."""
    if project.slides_dir is None or not project.slides_dir.is_dir():
        return None
    return {p.stem: p for p in project.slide_paths()}
