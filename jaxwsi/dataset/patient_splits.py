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
from jaxwsi.dataset.labels import category_of_slides, checked_values
from jaxwsi.dataset.splits_file import (
    entry_matches,
    folds_of_entry,
    make_entry,
    read_splits,
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
    """Patient → {"slides", "outcome_label", "category"[, "fold"][, "site"]} for the member rows.

    ``category`` (the stratification key) is the joined categorical labels, or None for a
    continuous outcome or no headers; ``fold`` and ``site`` come from ``manual_column`` and
    ``site_column`` when given. Blank values and patients whose slides disagree are errors.
    """
    if members.empty:
        raise SplitError("cannot split an empty dataset")
    label_of = _label_of_slide(members, headers, use_float)
    extras = {
        key: checked_values(members, column).map(lambda v: str(v).strip())
        for key, column in (("fold", manual_column), ("site", site_column))
        if column is not None
    }
    table: PatientTable = {}
    for patient, slides in members.groupby("patient")["slide"].apply(sorted).items():
        first = slides[0]
        label = label_of[first] if label_of is not None else None
        table[str(patient)] = {
            "slides": slides,
            "outcome_label": label,
            "category": label if headers and not use_float else None,
            **{key: values[first] for key, values in extras.items()},
        }
    return table


def _label_of_slide(members: pd.DataFrame, headers: list[str], use_float: bool) -> pd.Series | None:
    if not headers:
        return None
    if not use_float:
        return category_of_slides(members, headers)
    values = [checked_values(members, h).map(float) for h in headers]
    return pd.Series(
        [v[0] if len(v) == 1 else list(v) for v in zip(*values, strict=True)],
        index=members["slide"].to_numpy(),
        dtype=object,
    )


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
    splits_path: Path | None,
) -> list[algorithms.Fold]:
    """Patient folds: a matching entry of ``splits_path`` if there is one, else new folds
    (appended to ``splits_path`` when given)."""
    k = None if strategy in ("fixed", "k-fold-manual") else k_fold
    fraction = val_fraction if strategy == "fixed" else None
    saved_patients = {
        p: {key: info[key] for key in SAVED_KEYS if key in info} for p, info in patients.items()
    }
    entries = read_splits(splits_path) if splits_path is not None else []
    for index, entry in enumerate(entries):
        if entry_matches(
            entry,
            strategy=strategy,
            k_fold=k,
            val_fraction=fraction,
            seed=seed,
            patients=saved_patients,
        ):
            log.info("reusing %s split %d from %s", strategy, index, splits_path)
            return folds_of_entry(entry, f"{splits_path} entry {index}")
    folds, fold_names = new_folds(
        patients, strategy, k_fold=k_fold, val_fraction=fraction, seed=seed
    )
    algorithms.check_disjoint(folds)
    if splits_path is not None:
        entry = make_entry(
            strategy=strategy,
            k_fold=len(folds) if strategy == "k-fold-manual" else k,
            val_fraction=fraction,
            seed=seed,
            headers=headers,
            patients=saved_patients,
            folds=folds,
            fold_names=fold_names,
        )
        write_splits(splits_path, [*entries, entry])
        log.info("saved new %s split as entry %d of %s", strategy, len(entries), splits_path)
    return folds
