"""``splits.json``: saved train/validation splits, so a split is made once and then reused, by
jaxwsi and by Slideflow alike.

The file is a JSON list of entries in Slideflow's layout, plus what Slideflow leaves out:

    {"strategy": "k-fold", "k_fold": 3, "val_fraction": null, "seed": 0, "headers": ["label"],
     "outcome_labels": {"label": {"0": "normal", "1": "tumor"}},
     "patients": {patient: {"outcome_label": 1, "slides": [...], "site": ...}},
     "tfrecords": {"k-fold-1": [slides validated in fold 1], ...}   # or {"training", "validation"}
     "folds": [{"training": [slides], "validation": [slides]}, ...]}

``outcome_label`` is written as Slideflow writes it, so Slideflow reuses jaxwsi's entries: the
class index into the sorted categories (a list of indices for several headers), the float(s) of a
continuous outcome, or the patient name without headers. Slideflow matches an entry on strategy,
number of folds, the sorted patient list and these labels, and ignores the other keys.
``outcome_labels`` names the classes behind the indices; Slideflow's own entries lack it, and
their indices are read through the sorted categories, as Slideflow assigns them. Entries from
older jaxwsi versions (category names as labels) still match. ``folds`` states, for every fold,
which slides trained and which validated (slideflow issue #282); Slideflow's entries are read
through their ``tfrecords`` lists. The file is rewritten atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from jaxwsi.atomic import write_text_atomic
from jaxwsi.dataset.errors import SplitError
from jaxwsi.dataset.splits import Fold, check_disjoint, folds_from_validation
from jaxwsi.messages import name_some, plural

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
    classes: Mapping[str, Sequence] | None = None,
    fold_names: Sequence[str] | None = None,
) -> dict:
    """A splits.json entry. ``patients`` maps patient → {"outcome_label", "slides"[, "site"]};
    ``folds`` are patient-level; ``classes`` maps a categorical header to the categories its
    indices refer to; ``fold_names`` label k-fold-manual folds by their column value."""

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
        "outcome_labels": {
            h: {str(i): str(name) for i, name in enumerate(names)}
            for h, names in (classes or {}).items()
        },
        "patients": {p: dict(patients[p]) for p in sorted(patients)},
        "tfrecords": tfrecords,
        "folds": [
            {"training": slides_of(train), "validation": slides_of(val)} for train, val in folds
        ],
    }
    if fold_names is not None:
        entry["fold_names"] = list(fold_names)
    return entry


def same_cohort(entry: Mapping, strategy: str, patients: Mapping[str, object]) -> bool:
    """Whether an entry splits the same patients with the same strategy (then it is reused, or
    there is a reason it is not, worth telling the user)."""
    saved = entry.get("patients")
    return (
        entry.get("strategy") == strategy
        and isinstance(saved, Mapping)
        and sorted(map(str, saved)) == sorted(map(str, patients))
    )


def entry_mismatch(
    entry: Mapping,
    *,
    k_fold: int | None,
    val_fraction: float | None,
    seed: int,
    patients: Mapping[str, Mapping],
    classes: Mapping[str, Sequence] | None = None,
) -> str | None:
    """Why an entry of the same cohort (`same_cohort`) is not the split asked for, or None when
    it is: the fold count, fraction and seed (where the entry has them), the class names behind
    its indices, each patient's outcome label and ``site``/``fold`` values.

    ``patients`` maps patient → {"outcome_label" (Slideflow's form), "name" (the category text,
    None unless categorical)[, "site"][, "fold"]}."""
    if k_fold is not None:
        saved_k = entry.get("k_fold") or len(entry.get("tfrecords", {}))
        if saved_k != k_fold:
            return f"it has {saved_k} folds, k_fold={k_fold} was asked"
    if "seed" in entry and entry["seed"] != seed:
        return f"it was made with seed {entry['seed']}, seed {seed} was asked"
    if entry.get("val_fraction") is not None and entry["val_fraction"] != val_fraction:
        return f"its val_fraction is {entry['val_fraction']}, {val_fraction} was asked"
    saved_classes = entry.get("outcome_labels")
    if saved_classes and classes is not None:
        wanted = {h: {str(i): str(n) for i, n in enumerate(v)} for h, v in classes.items()}
        if saved_classes != wanted:
            return f"its classes are {saved_classes}, the dataset's are {wanted}"
    saved = {str(p): info for p, info in entry["patients"].items()}
    differ = []
    for patient, info in patients.items():
        saved_info = saved[patient] if isinstance(saved[patient], Mapping) else {}
        if "outcome_label" in info and not _same_label(
            saved_info.get("outcome_label"), info, patient
        ):
            differ.append(
                f"{patient}: saved {saved_info.get('outcome_label')!r}, now "
                f"{info['outcome_label']!r}"
            )
        for key in ("site", "fold"):
            if key in info and str(saved_info.get(key)) != str(info[key]):
                differ.append(f"{patient}: saved {key} {saved_info.get(key)!r}, now {info[key]!r}")
    if differ:
        return f"the labels of {plural(len(differ), 'patient')} differ ({name_some(differ, 3)})"
    return None


def _same_label(saved: object, info: Mapping, patient: str) -> bool:
    """A saved outcome label against the current one, in any form an entry may hold it."""
    current = info["outcome_label"]
    if isinstance(saved, str) and info.get("name") is not None:
        return saved == info["name"]  # category names (entries of older jaxwsi versions)
    if saved is None or (isinstance(saved, str) and current == patient):
        return saved in (None, patient)  # no outcome: Slideflow writes the patient
    if isinstance(saved, list) and isinstance(current, list):
        return len(saved) == len(current) and all(
            _same_number(a, b) for a, b in zip(saved, current, strict=True)
        )
    return _same_number(saved, current)


def _same_number(saved: object, current: object) -> bool:
    if isinstance(saved, bool) or isinstance(current, bool):
        return saved == current
    if isinstance(saved, int | float) and isinstance(current, int | float):
        return float(saved) == float(current)
    return saved == current


def entry_matches(
    entry: Mapping,
    *,
    strategy: str,
    k_fold: int | None,
    val_fraction: float | None,
    seed: int,
    patients: Mapping[str, Mapping],
    classes: Mapping[str, Sequence] | None = None,
) -> bool:
    """Whether a saved entry is the split asked for (`same_cohort` and no `entry_mismatch`)."""
    return same_cohort(entry, strategy, patients) and (
        entry_mismatch(
            entry,
            k_fold=k_fold,
            val_fraction=val_fraction,
            seed=seed,
            patients=patients,
            classes=classes,
        )
        is None
    )


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
