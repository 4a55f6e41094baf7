"""Patient-level split algorithms and the splits.json store."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from jaxwsi.dataset import splits
from jaxwsi.dataset.errors import SplitError
from jaxwsi.dataset.splits_file import (
    entry_matches,
    folds_of_entry,
    make_entry,
    read_splits,
    write_splits,
)

# 12 patients: 6 in X, 3 in Y, 3 in Z.
CATEGORIES = {f"p{i:02d}": c for i, c in enumerate("XXXXXXYYYZZZ")}


def assert_partition(folds, patients):
    for training, validation in folds:
        assert not set(training) & set(validation)
        assert set(training) | set(validation) == set(patients)


def test_k_fold_is_stratified_disjoint_and_covers_every_patient_once():
    folds = splits.k_fold(CATEGORIES, 3, seed=0)
    assert len(folds) == 3
    assert_partition(folds, CATEGORIES)
    validated = [p for _, validation in folds for p in validation]
    assert sorted(validated) == sorted(CATEGORIES)  # each patient validates exactly once
    for _, validation in folds:
        assert Counter(CATEGORIES[p] for p in validation) == {"X": 2, "Y": 1, "Z": 1}


def test_k_fold_is_reproducible_and_depends_on_the_seed():
    assert splits.k_fold(CATEGORIES, 3, seed=7) == splits.k_fold(CATEGORIES, 3, seed=7)
    assert splits.k_fold(CATEGORIES, 3, seed=7) != splits.k_fold(CATEGORIES, 3, seed=8)


def test_k_fold_fold_sizes_differ_by_at_most_one():
    uneven = {f"p{i}": c for i, c in enumerate("XXXXXYYYYYZ")}  # 5, 5, 1 over 3 folds
    sizes = [len(v) for _, v in splits.k_fold(uneven, 3, seed=0)]
    assert sum(sizes) == 11
    assert max(sizes) - min(sizes) <= 1


def test_k_fold_warns_when_a_category_is_smaller_than_k(caplog):
    splits.k_fold({"a": "X", "b": "X", "c": "X", "d": "Y"}, 3, seed=0)
    assert "category 'Y' has 1 patient(s), fewer than k_fold=3" in caplog.text


def test_unstratified_k_fold():
    patients = {f"p{i}": None for i in range(7)}
    folds = splits.k_fold(patients, 2, seed=1)
    assert_partition(folds, patients)
    assert sorted(len(v) for _, v in folds) == [3, 4]


@pytest.mark.parametrize(("k", "message"), [(1, "k_fold >= 2"), (13, "at least 13 patients")])
def test_k_fold_bad_k(k, message):
    with pytest.raises(SplitError, match=message):
        splits.k_fold(CATEGORIES, k, seed=0)


def test_manual_folds_follow_the_column():
    names, folds = splits.manual_folds({"a": "2", "b": "1", "c": "2", "d": "3"})
    assert names == ["1", "2", "3"]
    assert [v for _, v in folds] == [["b"], ["a", "c"], ["d"]]
    assert folds[1][0] == ["b", "d"]
    with pytest.raises(SplitError, match="at least 2 distinct fold values"):
        splits.manual_folds({"a": "1", "b": "1"})


def test_preserved_site_never_shares_a_site_between_training_and_validation():
    sites = {p: "ABCDEFABCDEF"[i] for i, p in enumerate(sorted(CATEGORIES))}
    folds = splits.preserved_site_folds(CATEGORIES, sites, 3, seed=0)
    assert_partition(folds, CATEGORIES)
    for training, validation in folds:
        assert validation
        assert not {sites[p] for p in training} & {sites[p] for p in validation}
    assert splits.preserved_site_folds(CATEGORIES, sites, 3, seed=0) == folds
    with pytest.raises(SplitError, match="needs at least 7 sites, found 6"):
        splits.preserved_site_folds(CATEGORIES, sites, 7, seed=0)


def test_preserved_site_balances_categories_when_sites_allow():
    # Site s0..s5 each hold one X and one Y patient: 3 folds of 2 sites get 2 X and 2 Y each.
    categories = {f"p{i}": "XY"[i % 2] for i in range(12)}
    sites = {f"p{i}": f"s{i // 2}" for i in range(12)}
    for _, validation in splits.preserved_site_folds(categories, sites, 3, seed=3):
        assert Counter(categories[p] for p in validation) == {"X": 2, "Y": 2}


def test_bootstrap_validates_out_of_bag():
    folds = splits.bootstrap(list(CATEGORIES), 4, seed=0)
    assert len(folds) == 4
    assert_partition(folds, CATEGORIES)
    assert all(validation for _, validation in folds)  # 12 draws of 12 leave some out here
    assert folds == splits.bootstrap(list(CATEGORIES), 4, seed=0)
    assert folds[0] != folds[1]


def test_fixed_takes_val_fraction_of_each_category():
    [(training, validation)] = splits.fixed(CATEGORIES, 1 / 3, seed=0)
    assert Counter(CATEGORIES[p] for p in validation) == {"X": 2, "Y": 1, "Z": 1}
    assert len(training) == 8
    with pytest.raises(SplitError, match="0 < val_fraction < 1"):
        splits.fixed(CATEGORIES, 1.0, seed=0)
    with pytest.raises(SplitError, match="one side would be empty"):
        splits.fixed({"a": None, "b": None}, 0.1, seed=0)


def test_none_trains_on_everything():
    assert splits.no_split(["b", "a"]) == [(["a", "b"], [])]


def test_unknown_strategy_and_overlap_are_errors():
    with pytest.raises(SplitError, match="unknown split strategy 'kfold'"):
        splits.check_split_strategy("kfold")
    with pytest.raises(SplitError, match=r"fold 2 has patient\(s\) in both .*\['b'\]"):
        splits.check_disjoint([(["a"], ["b"]), (["a", "b"], ["b"])])


PATIENTS = {
    "P1": {"outcome_label": "X", "slides": ["s1", "s2"]},
    "P2": {"outcome_label": "Y", "slides": ["s3"]},
    "P3": {"outcome_label": "X", "slides": ["s4"]},
}


def test_splits_json_round_trip_records_training_and_validation_slides(tmp_path):
    path = tmp_path / "splits.json"
    folds = [(["P2", "P3"], ["P1"]), (["P1"], ["P2", "P3"])]
    entry = make_entry(
        strategy="k-fold",
        k_fold=2,
        val_fraction=None,
        seed=5,
        headers=["label"],
        patients=PATIENTS,
        folds=folds,
    )
    write_splits(path, [entry])
    [saved] = read_splits(path)
    assert saved["folds"] == [
        {"training": ["s3", "s4"], "validation": ["s1", "s2"]},
        {"training": ["s1", "s2"], "validation": ["s3", "s4"]},
    ]
    assert saved["tfrecords"] == {"k-fold-1": ["s1", "s2"], "k-fold-2": ["s3", "s4"]}
    assert folds_of_entry(saved, "test") == folds
    labels = {"P1": "X", "P2": "Y", "P3": "X"}
    patients = {p: {"outcome_label": v} for p, v in labels.items()}
    common = {"strategy": "k-fold", "val_fraction": None, "patients": patients}
    assert entry_matches(saved, k_fold=2, seed=5, **common)
    assert not entry_matches(saved, k_fold=3, seed=5, **common)
    assert not entry_matches(saved, k_fold=2, seed=6, **common)
    assert not entry_matches(saved, k_fold=2, seed=5, **(common | {"strategy": "bootstrap"}))
    changed = common | {"patients": patients | {"P3": {"outcome_label": "Y"}}}
    assert not entry_matches(saved, k_fold=2, seed=5, **changed)
    fewer = common | {"patients": {p: patients[p] for p in ("P1", "P2")}}
    assert not entry_matches(saved, k_fold=2, seed=5, **fewer)
    # A site or fold value that differs from the saved one is another split.
    with_site = common | {"patients": {p: {**i, "site": "A"} for p, i in patients.items()}}
    assert not entry_matches(saved, k_fold=2, seed=5, **with_site)
    assert not list(tmp_path.glob(".splits.json.*"))  # no temporary file left behind


def test_slideflow_entries_are_read_from_their_tfrecords_lists():
    slideflow_entry = {
        "strategy": "k-fold",
        "patients": PATIENTS,
        "tfrecords": {"k-fold-2": ["s3"], "k-fold-1": ["s1", "s2", "s4"]},
    }
    assert folds_of_entry(slideflow_entry, "sf") == [(["P2"], ["P1", "P3"]), (["P1", "P3"], ["P2"])]
    patients = {p: {"outcome_label": info["outcome_label"]} for p, info in PATIENTS.items()}
    # No seed is saved by Slideflow, so any seed reuses it.
    assert entry_matches(
        slideflow_entry,
        strategy="k-fold",
        k_fold=2,
        val_fraction=None,
        seed=123,
        patients=patients,
    )
    fixed_entry = {"strategy": "fixed", "patients": PATIENTS}
    fixed_entry["tfrecords"] = {"training": ["s3"], "validation": ["s1", "s2", "s4"]}
    assert folds_of_entry(fixed_entry, "sf") == [(["P2"], ["P1", "P3"])]


def test_saved_entry_with_a_patient_on_both_sides_is_rejected():
    entry = {"strategy": "fixed", "patients": PATIENTS}
    entry["folds"] = [{"training": ["s1", "s3"], "validation": ["s2", "s4"]}]
    with pytest.raises(SplitError, match=r"bad: fold 1 has patient\(s\) in both .*\['P1'\]"):
        folds_of_entry(entry, "bad")


def test_saved_entry_with_unknown_slides_is_rejected():
    entry = {"strategy": "fixed", "patients": PATIENTS}
    entry["folds"] = [{"training": ["s1", "s2"], "validation": ["s3", "zz"]}]
    with pytest.raises(SplitError, match=r"fold 1 validation lists slides of no saved patient"):
        folds_of_entry(entry, "bad")


def test_unreadable_splits_file_is_named(tmp_path):
    path = tmp_path / "splits.json"
    assert read_splits(path) == []
    path.write_text("{not json")
    with pytest.raises(SplitError, match="splits.json: cannot read splits"):
        read_splits(path)
    path.write_text(json.dumps({"strategy": "k-fold"}))
    with pytest.raises(SplitError, match="expected a JSON list"):
        read_splits(path)


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "splits.json"
    write_splits(path, [{"strategy": "none"}])
    with pytest.raises(TypeError):
        write_splits(path, [{"strategy": object()}])
    assert read_splits(path) == [{"strategy": "none"}]
    assert [p.name for p in tmp_path.iterdir()] == ["splits.json"]
