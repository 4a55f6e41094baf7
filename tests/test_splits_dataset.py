"""Dataset.split on real TFRecords: patient-level, stratified, reproducible, saved and reused."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pandas as pd
import pytest
from splits_data import patient_dataset

import jaxwsi
from jaxwsi.dataset.errors import DatasetError, SplitError

# 12 patients, 14 slides: p00 and p01 have two slides each. Categories: 6 x, 3 y, 3 z.
# Sites A–F with two patients each; a manual fold column with values 1–3.
PATIENTS = [f"p{i:02d}" for i in range(12)]
KIND = dict(zip(PATIENTS, "xxxxxxyyyzzz", strict=True))
SITE = dict(zip(PATIENTS, "AABBCCDDEEFF", strict=True))
FOLD = dict(zip(PATIENTS, "123123123123", strict=True))
SLIDES = [(p, f"{p}_s0") for p in PATIENTS] + [("p00", "p00_s1"), ("p01", "p01_s1")]


@pytest.fixture
def dataset(tmp_path, fixtures_dir):
    age = {p: str(40 + int(p[1:])) for p in PATIENTS}
    columns = {"kind": KIND, "age": age, "site": SITE, "fold": FOLD}
    return patient_dataset(tmp_path, fixtures_dir, SLIDES, columns)


def patients_of(dataset) -> set[str]:
    return set(dataset.patients().values())


def assert_patient_level_partition(dataset, folds):
    for training, validation in folds:
        assert not patients_of(training) & patients_of(validation)
        assert set(training.slides()) | set(validation.slides()) == set(dataset.slides())
        assert not set(training.slides()) & set(validation.slides())


def test_k_fold_is_patient_level_stratified_and_saved(dataset, tmp_path):
    folds = dataset.split("kind", "k-fold", k_fold=3, seed=0)
    assert len(folds) == 3
    assert_patient_level_partition(dataset, folds)
    for _, validation in folds:
        assert Counter(KIND[p] for p in patients_of(validation)) == {"x": 2, "y": 1, "z": 1}
    validated = [p for _, v in folds for p in patients_of(v)]
    assert sorted(validated) == PATIENTS
    [entry] = json.loads((tmp_path / "splits.json").read_text())
    assert entry["strategy"] == "k-fold" and entry["k_fold"] == 3 and entry["seed"] == 0
    # Slideflow's form: the class index into the sorted categories, which are named beside it.
    assert entry["patients"]["p00"] == {"outcome_label": 0, "slides": ["p00_s0", "p00_s1"]}
    assert entry["outcome_labels"] == {"kind": {"0": "x", "1": "y", "2": "z"}}
    for saved, (training, validation) in zip(entry["folds"], folds, strict=True):
        assert saved == {"training": training.slides(), "validation": validation.slides()}


def test_split_is_reused_from_splits_json(dataset, tmp_path, caplog):
    caplog.set_level("INFO")
    first = dataset.split("kind", k_fold=3, seed=0)
    path = tmp_path / "splits.json"
    # Hand-edit the saved split (fold 1 ↔ fold 2): a reused split must follow the file.
    entries = json.loads(path.read_text())
    entries[0]["folds"] = [entries[0]["folds"][i] for i in (1, 0, 2)]
    path.write_text(json.dumps(entries))
    again = dataset.split("kind", k_fold=3, seed=0)
    assert "reusing k-fold split 0" in caplog.text
    assert [v.slides() for _, v in again] == [first[i][1].slides() for i in (1, 0, 2)]
    assert len(json.loads(path.read_text())) == 1  # nothing new saved
    # Another seed is another split, appended to the file.
    other = dataset.split("kind", k_fold=3, seed=1)
    assert [v.slides() for _, v in other] != [v.slides() for _, v in first]
    assert len(json.loads(path.read_text())) == 2


def test_split_is_reproducible_without_a_file(dataset, tmp_path):
    one = dataset.split("kind", k_fold=4, seed=3, splits=tmp_path / "a.json")
    two = dataset.split("kind", k_fold=4, seed=3, splits=tmp_path / "b.json")
    assert [v.slides() for _, v in one] == [v.slides() for _, v in two]


def test_changed_labels_make_a_new_split(dataset, tmp_path):
    dataset.split("kind", k_fold=3, seed=0)
    dataset.filter({"kind": ["x", "y"]}).split("kind", k_fold=3, seed=0)
    assert len(json.loads((tmp_path / "splits.json").read_text())) == 2


def test_k_fold_on_a_continuous_outcome_is_unstratified(dataset):
    folds = dataset.split("age", k_fold=3, seed=0, use_float=True)
    assert_patient_level_partition(dataset, folds)
    assert sorted(len(patients_of(v)) for _, v in folds) == [4, 4, 4]


def test_k_fold_manual_follows_the_column(dataset, tmp_path):
    folds = dataset.split(strategy="k-fold-manual", manual_column="fold")
    assert_patient_level_partition(dataset, folds)
    for value, (_, validation) in zip("123", folds, strict=True):
        assert patients_of(validation) == {p for p in PATIENTS if FOLD[p] == value}
    [entry] = json.loads((tmp_path / "splits.json").read_text())
    assert entry["fold_names"] == ["1", "2", "3"]
    assert entry["patients"]["p00"]["fold"] == "1"
    # Editing the fold column makes a new split instead of reusing the saved one.
    edited = dataset.annotations.assign(fold=lambda t: t["fold"].replace({"3": "2"}))
    other = jaxwsi.Dataset(edited, dataset.tfrecords(), splits=tmp_path / "splits.json")
    assert len(other.split(strategy="k-fold-manual", manual_column="fold")) == 2
    assert len(json.loads((tmp_path / "splits.json").read_text())) == 2
    with pytest.raises(SplitError, match="needs manual_column"):
        dataset.split(strategy="k-fold-manual")


def test_k_fold_preserved_site_keeps_sites_apart(dataset):
    folds = dataset.split("kind", "k-fold-preserved-site", k_fold=3, seed=0)
    assert_patient_level_partition(dataset, folds)
    for training, validation in folds:
        sites = dataset.annotations.set_index("slide")["site"]
        assert not set(sites[training.slides()]) & set(sites[validation.slides()])


def test_bootstrap_and_fixed_and_none(dataset, tmp_path):
    rounds = dataset.split("kind", "bootstrap", k_fold=2, seed=0)
    assert len(rounds) == 2
    assert_patient_level_partition(dataset, rounds)
    [(training, validation)] = dataset.split("kind", "fixed", val_fraction=1 / 3, seed=0)
    assert_patient_level_partition(dataset, [(training, validation)])
    assert Counter(KIND[p] for p in patients_of(validation)) == {"x": 2, "y": 1, "z": 1}
    [(everything, nothing)] = dataset.split(strategy="none")
    assert everything.slides() == dataset.slides() and nothing.slides() == []
    strategies = [e["strategy"] for e in json.loads((tmp_path / "splits.json").read_text())]
    assert strategies == ["bootstrap", "fixed"]


def test_split_datasets_keep_balance_and_clip(dataset):
    balanced = dataset.balance(strategy="patient").clip(5)
    training, validation = balanced.split("kind", k_fold=3, seed=0)[0]
    assert sum(training.prob_weights.values()) == pytest.approx(1.0)
    assert set(training.clips.values()) == {5}
    assert set(training.prob_weights) == set(training.tfrecords())


def test_split_bad_input(dataset, tmp_path):
    with pytest.raises(SplitError, match="unknown split strategy 'kfold'"):
        dataset.split("kind", "kfold")
    with pytest.raises(SplitError, match="the fixed split needs val_fraction"):
        dataset.split("kind", "fixed")
    with pytest.raises(SplitError, match="needs at least 7 sites, found 6"):
        dataset.split("kind", "k-fold-preserved-site", k_fold=7)
    with pytest.raises(SplitError, match="cannot split an empty dataset"):
        dataset.filter({"kind": "nothing"}).split("kind")
    with pytest.raises(DatasetError, match="outcome column 'grade'"):
        dataset.split("grade")


def test_split_refuses_conflicting_labels_and_mixed_sites(tmp_path, fixtures_dir):
    folder = tmp_path / "tfrecords"
    folder.mkdir()
    for slide in ("a", "b", "c", "d"):
        shutil.copy(fixtures_dir / "tfrecords" / "slide_c.tfrecords", folder / f"{slide}.tfrecords")
    table = pd.DataFrame(
        {
            "patient": ["P1", "P1", "P2", "P3"],
            "slide": ["a", "b", "c", "d"],
            "kind": ["x", "y", "x", "y"],
            "site": ["S1", "S2", "S1", "S2"],
        }
    )
    dataset = jaxwsi.Dataset(table, folder)
    with pytest.raises(DatasetError, match=r"conflicting 'kind' labels: P1 \(a=x, b=y\)"):
        dataset.split("kind", k_fold=2)
    with pytest.raises(DatasetError, match=r"conflicting 'site' labels: P1"):
        dataset.split(strategy="k-fold-preserved-site", k_fold=2)
