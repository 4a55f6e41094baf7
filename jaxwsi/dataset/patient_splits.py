"""Splitting a dataset's patients: the patient table, then a saved split reused or a new one made.

This joins the split algorithms (`jaxwsi.dataset.splits`) to the splits.json store
(`jaxwsi.dataset.splits_file`); `Dataset.split` turns the patient folds into datasets.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from jaxwsi.dataset import splits as algorithms
from jaxwsi.dataset.errors import SplitError
from jaxwsi.dataset.labels import category_of_slides, checked_values, slide_labels
from jaxwsi.dataset.splits_file import (
    entry_mismatch,
    folds_of_entry,
    make_entry,
    read_splits,
    same_cohort,
    write_splits,
)

log = logging.getLogger(__name__)

PatientTable = dict[str, dict[str, Any]]
# Per-patient keys saved to splits.json and compared when deciding to reuse a saved split.
SAVED_KEYS = ("outcome_label", "slides", "site", "fold")


def patient_table(
    members: pd.DataFrame,
    headers: list[str],
    *,
    use_float: bool,
    manual_column: str | None = None,
    site_column: str | None = None,
) -> PatientTable:
    """Patient → {"slides", "outcome_label", "name", "category"[, "fold"][, "site"]}.

    ``outcome_label`` is the label as Slideflow writes it in splits.json: the class index (a list
    of indices for several headers) of a categorical outcome, the float(s) of a continuous one, or
    the patient itself without headers. ``name`` is the category as text (header values joined by
    ``'-'``; None for continuous or no headers) and ``category`` the stratification key (the same,
    or None). ``fold`` and ``site`` come from ``manual_column`` and ``site_column`` when given.
    Blank values and patients whose slides disagree are errors.
    """
    if members.empty:
        raise SplitError("cannot split an empty dataset")
    labels: dict[str, Any] = slide_labels(members, headers, use_float)[0] if headers else {}
    names = category_of_slides(members, headers) if headers and not use_float else None
    extras = {
        key: checked_values(members, column).map(lambda v: str(v).strip())
        for key, column in (("fold", manual_column), ("site", site_column))
        if column is not None
    }
    table: PatientTable = {}
    for patient, slides in members.groupby("patient")["slide"].apply(sorted).items():
        first = slides[0]
        name = names[first] if names is not None else None
        table[str(patient)] = {
            "slides": slides,
            "outcome_label": labels[first] if headers else str(patient),
            "name": name,
            "category": name,
            **{key: values[first] for key, values in extras.items()},
        }
    return table


def class_names(members: pd.DataFrame, headers: list[str], use_float: bool) -> dict[str, list]:
    """Header → the sorted categories its class indices refer to (empty when not categorical)."""
    if not headers or use_float:
        return {}
    unique = slide_labels(members, headers, False)[1]
    return {headers[0]: list(unique)} if isinstance(unique, list) else dict(unique)


def new_folds(
    patients: PatientTable,
    strategy: str,
    *,
    k_fold: int,
    val_fraction: float | None,
    seed: int,
) -> tuple[list[algorithms.Fold], list[str] | None]:
    """Folds made by the strategy's algorithm, and the fold names of k-fold-manual."""
    categories = {p: info["category"] for p, info in patients.items()}
    if strategy == "k-fold":
        return algorithms.k_fold(categories, k_fold, seed), None
    if strategy == "k-fold-manual":
        names, folds = algorithms.manual_folds({p: info["fold"] for p, info in patients.items()})
        return folds, names
    if strategy == "k-fold-preserved-site":
        sites = {p: info["site"] for p, info in patients.items()}
        return algorithms.preserved_site_folds(categories, sites, k_fold, seed), None
    if strategy == "bootstrap":
        return algorithms.bootstrap(list(patients), k_fold, seed), None
    if strategy == "fixed":
        if val_fraction is None:
            raise SplitError("the fixed split needs val_fraction")
        return algorithms.fixed(categories, val_fraction, seed), None
    raise SplitError(f"strategy {strategy!r} makes no folds")


def split_patients(
    patients: PatientTable,
    strategy: str,
    *,
    k_fold: int,
    val_fraction: float | None,
    seed: int,
    headers: list[str],
    classes: dict[str, list],
    splits_path: Path | None,
) -> list[algorithms.Fold]:
    """Patient folds: a matching entry of ``splits_path`` if there is one (written by jaxwsi or
    Slideflow), else new folds (appended to ``splits_path`` when given). An entry for the same
    strategy and patients that does not match is not reused, with a warning saying why."""
    k = None if strategy in ("fixed", "k-fold-manual") else k_fold
    fraction = val_fraction if strategy == "fixed" else None
    entries = read_splits(splits_path) if splits_path is not None else []
    refused = []
    for index, entry in enumerate(entries):
        if not same_cohort(entry, strategy, patients):
            continue
        reason = entry_mismatch(
            entry,
            k_fold=k,
            val_fraction=fraction,
            seed=seed,
            patients=patients,
            classes=classes,
        )
        if reason is None:
            log.info("reusing %s split %d from %s", strategy, index, splits_path)
            return folds_of_entry(entry, f"{splits_path} entry {index}")
        refused.append(f"entry {index}: {reason}")
    if refused:
        log.warning(
            "%s has %s split(s) of these patients, not reused: %s; making a new one",
            splits_path,
            strategy,
            "; ".join(refused),
        )
    folds, fold_names = new_folds(
        patients, strategy, k_fold=k_fold, val_fraction=fraction, seed=seed
    )
    algorithms.check_disjoint(folds)
    if splits_path is not None:
        saved_patients = {
            p: {key: info[key] for key in SAVED_KEYS if key in info} for p, info in patients.items()
        }
        entry = make_entry(
            strategy=strategy,
            k_fold=len(folds) if strategy == "k-fold-manual" else k,
            val_fraction=fraction,
            seed=seed,
            headers=headers,
            classes=classes,
            patients=saved_patients,
            folds=folds,
            fold_names=fold_names,
        )
        write_splits(splits_path, [*entries, entry])
        log.info("saved new %s split as entry %d of %s", strategy, len(entries), splits_path)
    return folds
