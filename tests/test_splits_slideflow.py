"""splits.json shared with Slideflow, both ways.

Slideflow (3.0.2, ``Dataset.split``) reuses an entry when its strategy, its number of k-fold lists,
its sorted patient list and every patient's ``outcome_label`` equal the split it is asked for; the
label is the class index into the sorted categories. `slideflow_reuses` below is that check, and
`slideflow_labels` is how Slideflow assigns the indices (sorted unique text values)."""

from __future__ import annotations

import json

import pytest
from splits_data import patient_dataset

# 9 patients (p0 has two slides); kind: 4 a, 3 b, 2 c; grade: numbers.
PATIENTS = [f"p{i}" for i in range(9)]
KIND = dict(zip(PATIENTS, "aaaabbbcc", strict=True))
GRADE = dict(zip(PATIENTS, "121212121", strict=True))
SLIDES = [(p, f"{p}_s0") for p in PATIENTS] + [("p0", "p0_s1")]


@pytest.fixture
def dataset(tmp_path, fixtures_dir):
    age = {p: str(30 + 7 * int(p[1:])) for p in PATIENTS}
    return patient_dataset(
        tmp_path, fixtures_dir, SLIDES, {"kind": KIND, "grade": GRADE, "age": age}
    )


def slideflow_labels(values: dict[str, str]) -> dict[str, int]:
    """Slideflow's categorical labels: the index into the sorted unique values."""
    unique = sorted(set(values.values()))
    return {k: unique.index(v) for k, v in values.items()}


def slideflow_patients(labels: dict[str, object]) -> dict:
    slides = {p: sorted(s for q, s in SLIDES if q == p) for p in PATIENTS}
    return {p: {"outcome_label": labels[p], "slides": slides[p]} for p in PATIENTS}


def slideflow_reuses(entry: dict, strategy: str, k: int | None, labels: dict) -> bool:
    """Slideflow's test for reusing a saved split (dataset.py, Dataset.split)."""
    if entry["strategy"] != strategy:
        return False
    if strategy in ("k-fold", "k-fold-preserved-site") and len(entry["tfrecords"]) != k:
        return False
    saved = sorted(entry["patients"])
    if saved != sorted(labels):
        return False
    return [labels[p] for p in saved] == [entry["patients"][p]["outcome_label"] for p in saved]


def slideflow_folds(entry: dict, k: int) -> list[tuple[list[str], list[str]]]:
    """The (training, validation) slides Slideflow takes from an entry for k_fold_iter 1..k."""
    lists = entry["tfrecords"]
    return [
        (
            sorted(s for j in range(1, k + 1) if j != i for s in lists[f"k-fold-{j}"]),
            sorted(lists[f"k-fold-{i}"]),
        )
        for i in range(1, k + 1)
    ]


def slides_of(folds):
    return [(training.slides(), validation.slides()) for training, validation in folds]


def test_a_slideflow_entry_with_class_indices_is_reused_with_its_folds(dataset, tmp_path, caplog):
    caplog.set_level("INFO")
    # As Slideflow writes it: indices, no seed, no folds; slides in patient order, not sorted.
    entry = {
        "strategy": "k-fold",
        "patients": slideflow_patients(slideflow_labels(KIND)),
        "tfrecords": {
            "k-fold-1": ["p8_s0", "p0_s0", "p0_s1", "p4_s0"],
            "k-fold-2": ["p1_s0", "p5_s0", "p7_s0"],
            "k-fold-3": ["p6_s0", "p2_s0", "p3_s0"],
        },
    }
    path = tmp_path / "splits.json"
    path.write_text(json.dumps([entry]))
    folds = dataset.split("kind", "k-fold", k_fold=3, seed=7)
    assert "reusing k-fold split 0" in caplog.text
    assert slides_of(folds) == slideflow_folds(entry, 3)
    assert json.loads(path.read_text()) == [entry]  # reused, nothing appended
    # The same entry with class names instead of indices is reused too.
    named = entry | {"patients": slideflow_patients(KIND)}
    path.write_text(json.dumps([named]))
    assert slides_of(dataset.split("kind", k_fold=3)) == slideflow_folds(entry, 3)
    assert len(json.loads(path.read_text())) == 1


def test_a_slideflow_fixed_entry_is_reused(dataset, tmp_path):
    validation = ["p1_s0", "p5_s0", "p8_s0"]
    entry = {
        "strategy": "fixed",
        "patients": slideflow_patients(slideflow_labels(KIND)),
        "tfrecords": {
            "validation": validation,
            "training": sorted(set(dataset.slides()) - set(validation)),
        },
    }
    (tmp_path / "splits.json").write_text(json.dumps([entry]))
    [(training, valid)] = dataset.split("kind", "fixed", val_fraction=0.3)
    assert valid.slides() == validation
    assert training.slides() == entry["tfrecords"]["training"]


@pytest.mark.parametrize(
    ("headers", "use_float", "labels"),
    [
        ("kind", False, slideflow_labels(KIND)),
        # Several headers: a list of per-header indices.
        (
            ["kind", "grade"],
            False,
            {p: [slideflow_labels(KIND)[p], slideflow_labels(GRADE)[p]] for p in PATIENTS},
        ),
        ("age", True, {p: float(30 + 7 * int(p[1:])) for p in PATIENTS}),
    ],
)
def test_an_entry_written_by_jaxwsi_is_one_slideflow_reuses(
    dataset, tmp_path, headers, use_float, labels
):
    folds = dataset.split(headers, "k-fold", k_fold=3, seed=0, use_float=use_float)
    [entry] = json.loads((tmp_path / "splits.json").read_text())
    assert slideflow_reuses(entry, "k-fold", 3, labels)
    assert not slideflow_reuses(entry, "k-fold", 4, labels)
    # ... and Slideflow then trains and validates on the same slides as jaxwsi.
    assert slideflow_folds(entry, 3) == slides_of(folds)


def test_a_fixed_entry_written_by_jaxwsi_is_one_slideflow_reuses(dataset, tmp_path):
    [(training, validation)] = dataset.split("kind", "fixed", val_fraction=0.3, seed=0)
    [entry] = json.loads((tmp_path / "splits.json").read_text())
    assert slideflow_reuses(entry, "fixed", None, slideflow_labels(KIND))
    assert sorted(entry["tfrecords"]["validation"]) == validation.slides()
    assert sorted(entry["tfrecords"]["training"]) == training.slides()


def test_without_headers_the_label_is_the_patient_as_in_slideflow(dataset, tmp_path):
    folds = dataset.split(None, "k-fold", k_fold=3, seed=0)
    [entry] = json.loads((tmp_path / "splits.json").read_text())
    assert slideflow_reuses(entry, "k-fold", 3, {p: p for p in PATIENTS})
    assert slides_of(dataset.split(None, "k-fold", k_fold=3, seed=0)) == slides_of(folds)


def test_an_entry_of_the_same_patients_that_does_not_match_is_not_reused_and_says_why(
    dataset, tmp_path, caplog
):
    # Labels that differ from the annotations (b ↔ c swapped for p8): not this split.
    labels = slideflow_labels(KIND) | {"p8": 1}
    entry = {
        "strategy": "k-fold",
        "patients": slideflow_patients(labels),
        "tfrecords": {f"k-fold-{i}": [] for i in (1, 2, 3)},
    }
    path = tmp_path / "splits.json"
    path.write_text(json.dumps([entry]))
    dataset.split("kind", k_fold=3)
    assert "not reused: entry 0: the labels of 1 patient differ (p8: saved 1, now 2)" in caplog.text
    assert len(json.loads(path.read_text())) == 2
    caplog.clear()
    dataset.split("kind", k_fold=4)
    assert "entry 0: it has 3 folds, k_fold=4 was asked" in caplog.text
    assert "entry 1: it has 3 folds, k_fold=4 was asked" in caplog.text
    caplog.clear()
    dataset.split("kind", k_fold=3, seed=5)
    assert "entry 1: it was made with seed 0, seed 5 was asked" in caplog.text


def test_indices_saved_for_other_class_names_are_not_reused(dataset, tmp_path, caplog):
    dataset.split("kind", k_fold=3, seed=0)
    path = tmp_path / "splits.json"
    [entry] = json.loads(path.read_text())
    entry["outcome_labels"] = {"kind": {"0": "a", "1": "c", "2": "b"}}
    path.write_text(json.dumps([entry]))
    dataset.split("kind", k_fold=3, seed=0)
    assert "its classes are" in caplog.text
    assert len(json.loads(path.read_text())) == 2
