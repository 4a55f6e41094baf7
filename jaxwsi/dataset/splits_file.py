"""``splits.json``: saved train/validation splits, so a split is made once and then reused.

The file is a JSON list of entries in Slideflow's layout, plus what Slideflow leaves out:

    {"strategy": "k-fold", "k_fold": 3, "val_fraction": null, "seed": 0, "headers": ["label"],
     "patients": {patient: {"outcome_label": ..., "slides": [...], "site": ...}},
     "tfrecords": {"k-fold-1": [slides validated in fold 1], ...}   # or {"training", "validation"}
     "folds": [{"training": [slides], "validation": [slides]}, ...]}

``folds`` states, for every fold, which slides trained and which validated (Slideflow users
cannot tell from ``tfrecords`` alone, slideflow issue #282). Entries written by Slideflow (no
``folds``, no ``seed``) are read through their ``tfrecords`` lists. The file is rewritten
atomically (temporary file, fsync, rename).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from jaxwsi.atomic import write_text_atomic
from jaxwsi.dataset.errors import SplitError
from jaxwsi.dataset.splits import Fold, check_disjoint, folds_from_validation

KFOLD_STRATEGIES = ("k-fold", "k-fold-manual", "k-fold-preserved-site")


def read_splits(path: str | os.PathLike) -> list[dict]:
    """The entries of a splits file; an absent file has none."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        entries = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SplitError(f"{path}: cannot read splits: {error}") from error
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise SplitError(f"{path}: expected a JSON list of split entries")
    return entries


def write_splits(path: str | os.PathLike, entries: Sequence[Mapping]) -> None:
    """Write the entries atomically: a reader sees the old file or the new one, never a part."""
    write_text_atomic(path, json.dumps(list(entries), indent=1))


def make_entry(
    *,
    strategy: str,
    k_fold: int | None,
    val_fraction: float | None,
    seed: int,
    headers: Sequence[str],
    patients: Mapping[str, Mapping],
    folds: Sequence[Fold],
    fold_names: Sequence[str] | None = None,
) -> dict:
    """A splits.json entry. ``patients`` maps patient → {"outcome_label", "slides"[, "site"]};
    ``folds`` are patient-level; ``fold_names`` label k-fold-manual folds by their column value."""

    def slides_of(group: Sequence[str]) -> list[str]:
        return sorted(s for p in group for s in patients[p]["slides"])

    if strategy in KFOLD_STRATEGIES:
        tfrecords: dict = {f"k-fold-{i + 1}": slides_of(val) for i, (_, val) in enumerate(folds)}
    elif len(folds) == 1:
        tfrecords = {"training": slides_of(folds[0][0]), "validation": slides_of(folds[0][1])}
    else:  # bootstrap rounds (Slideflow never saves these)
        tfrecords = {
            f"round-{i + 1}": {"training": slides_of(train), "validation": slides_of(val)}
            for i, (train, val) in enumerate(folds)
        }
    entry = {
        "strategy": strategy,
        "k_fold": k_fold,
        "val_fraction": val_fraction,
        "seed": seed,
        "headers": list(headers),
        "patients": {p: dict(patients[p]) for p in sorted(patients)},
        "tfrecords": tfrecords,
        "folds": [
            {"training": slides_of(train), "validation": slides_of(val)} for train, val in folds
        ],
    }
    if fold_names is not None:
        entry["fold_names"] = list(fold_names)
    return entry


def entry_matches(
    entry: Mapping,
    *,
    strategy: str,
    k_fold: int | None,
    val_fraction: float | None,
    seed: int,
    patients: Mapping[str, Mapping],
) -> bool:
    """Whether a saved entry is the split asked for: same strategy, fold count, fraction and seed
    (when the entry has them), exactly the same patients with the same outcome labels, and the
    same ``site``/``fold`` values where ``patients`` has them."""
    if entry.get("strategy") != strategy:
        return False
    if "seed" in entry and entry["seed"] != seed:
        return False
    if entry.get("val_fraction") is not None and entry["val_fraction"] != val_fraction:
        return False
    if k_fold is not None:
        saved_k = entry.get("k_fold") or len(entry.get("tfrecords", {}))
        if saved_k != k_fold:
            return False
    saved = entry.get("patients", {})
    if set(map(str, saved)) != set(map(str, patients)):
        return False
    for patient, info in patients.items():
        saved_info = saved[patient]
        for key in ("outcome_label", "site", "fold"):
            if key in info and str(saved_info.get(key)) != str(info[key]):
                return False
    return True


def folds_of_entry(entry: Mapping, where: str) -> list[Fold]:
    """Patient-level folds of a saved entry (from ``folds``, or Slideflow's ``tfrecords``)."""
    patient_of = {
        s: str(p) for p, info in entry.get("patients", {}).items() for s in info.get("slides", [])
    }

    def patients_of(slides: Sequence[str], part: str) -> list[str]:
        unknown = sorted(set(slides) - set(patient_of))
        if unknown:
            raise SplitError(f"{where}: {part} lists slides of no saved patient: {unknown}")
        return sorted({patient_of[s] for s in slides})

    if "folds" in entry:
        folds = [
            (
                patients_of(f["training"], f"fold {i + 1} training"),
                patients_of(f["validation"], f"fold {i + 1} validation"),
            )
            for i, f in enumerate(entry["folds"])
        ]
    else:
        tfrecords = entry.get("tfrecords", {})
        if "validation" in tfrecords:
            folds = [
                (
                    patients_of(tfrecords["training"], "training"),
                    patients_of(tfrecords["validation"], "validation"),
                )
            ]
        else:
            names = sorted(tfrecords, key=lambda n: int(n.rsplit("-", 1)[-1]))
            validation = [patients_of(tfrecords[n], n) for n in names]
            folds = folds_from_validation(sorted(set(patient_of.values())), validation)
    check_disjoint(folds, where)
    return folds
