"""The pieces of Project.train that need no training: validation plans over patient-level
splits, model folder names, results logs, parallel trial execution and the input errors."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from experiment_data import OUTCOME, TILE_PX, TILE_UM, make_project

from jaxwsi.dataset.errors import DatasetError
from jaxwsi.experiment.model_dir import find_model_dir, model_name, new_model_dir
from jaxwsi.experiment.parallel import Execution, device_environments, run_trials
from jaxwsi.experiment.plan import ValidationPlan, plan_runs
from jaxwsi.experiment.results_log import update_results_log
from jaxwsi.experiment.runner import TrainRequest, check_outcomes

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("plan"))


def test_three_folds_partition_patients(project) -> None:
    dataset = project.dataset(TILE_PX, TILE_UM)
    runs = plan_runs(dataset, [OUTCOME], ValidationPlan(k_fold=3), use_float=False)
    assert [r.fold for r in runs] == [1, 2, 3]
    patients = dataset.patients()
    validated = []
    for run in runs:
        train = {patients[s] for s in run.training.slides()}
        val = {patients[s] for s in run.validation.slides()}
        assert not train & val
        assert train | val == set(patients.values())
        # stratified: one patient of each class validates in each fold
        labels = run.validation.labels(OUTCOME)[0]
        assert sorted(set(labels.values())) == [0, 1]
        validated += sorted(val)
    assert sorted(validated) == sorted(set(patients.values()))
    # The split was saved: a second plan reuses it.
    again = plan_runs(dataset, [OUTCOME], ValidationPlan(k_fold=3), use_float=False)
    assert [r.validation.slides() for r in again] == [r.validation.slides() for r in runs]


def test_val_k_fixed_none_and_explicit(project) -> None:
    dataset = project.dataset(TILE_PX, TILE_UM)
    runs = plan_runs(dataset, [OUTCOME], ValidationPlan(k_fold=3, k=[2]), use_float=False)
    assert [r.fold for r in runs] == [2]
    fixed = plan_runs(dataset, [OUTCOME], ValidationPlan("fixed", fraction=0.34), use_float=False)
    assert len(fixed) == 1 and fixed[0].fold is None and len(fixed[0].validation) == 4
    (none,) = plan_runs(dataset, [OUTCOME], ValidationPlan("none"), use_float=False)
    assert none.validation is None and len(none.training) == len(dataset)
    val = dataset.filter({"patient": ["p0"]})
    (explicit,) = plan_runs(dataset, [OUTCOME], ValidationPlan(), use_float=False, val_dataset=val)
    assert explicit.validation is val
    with pytest.raises(DatasetError, match=r"val_k \[4\] out of range"):
        plan_runs(dataset, [OUTCOME], ValidationPlan(k_fold=3, k=4), use_float=False)
    with pytest.raises(DatasetError, match="val_fraction"):
        ValidationPlan("fixed")


def test_model_folder_names_and_ids(tmp_path: Path) -> None:
    assert model_name("tissue", "HP0", 2) == "tissue-HP0-kfold2"
    assert model_name(["a", "b"], "HPSweep1") == "a-b-HPSweep1"
    first = new_model_dir(tmp_path, "tissue-HP0-kfold1")
    second = new_model_dir(tmp_path, "tissue-HP0-kfold1")
    assert (first.name, second.name) == ("00000-tissue-HP0-kfold1", "00001-tissue-HP0-kfold1")
    (tmp_path / "00007-other").mkdir()
    assert new_model_dir(tmp_path, "x").name == "00008-x"
    assert find_model_dir(tmp_path, "tissue-HP0-kfold1") == second
    assert find_model_dir(tmp_path, "nope") is None


def test_results_log_merges_rows_by_model_and_epoch(tmp_path: Path) -> None:
    path = tmp_path / "results_log.csv"
    update_results_log(path, "m1", {"epoch1": {"tile_auc": {"y": [0.5, 0.5]}, "loss": 0.7}})
    update_results_log(path, "m2", {1: {"slide_auc": {"y": [0.9, 0.9]}}})
    table = update_results_log(path, "m1", {"epoch1": {"tile_auc": {"y": [0.8, 0.8]}, "loss": 0.4}})
    assert list(table.columns) == ["model_name", "epoch", "loss", "slide_auc-y", "tile_auc-y"]
    saved = pd.read_csv(path)
    assert saved["model_name"].tolist() == ["m1", "m2"]
    assert saved.loc[0, "tile_auc-y"] == "[0.8, 0.8]" and saved.loc[0, "loss"] == 0.4


def test_bad_inputs_name_what_is_wrong(project) -> None:
    dataset = project.dataset(TILE_PX, TILE_UM)
    with pytest.raises(DatasetError, match=r"unknown outcome column\(s\) \['tisue'\].*'tissue'"):
        check_outcomes(dataset, ["tisue"], "annotations.csv")
    from jaxwsi.experiment.runner import project_dataset

    class HP:  # the two fields project_dataset reads
        tile_px, tile_um = TILE_PX, TILE_UM

    request = TrainRequest(outcomes=OUTCOME, filters={"tissue": ["necrosis"]})
    with pytest.raises(DatasetError, match=r"no slides left in .*annotations.csv after filters"):
        project_dataset(project, HP, request)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="val_kfold"):
        TrainRequest(outcomes=OUTCOME, val_kfold=3)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="executor must be one of"):
        TrainRequest(outcomes=OUTCOME, executor="threads")


def device_report(x: int) -> tuple[int, int, str]:
    """A trial: which devices its process sees, and a computation."""
    import jax
    import jax.numpy as jnp

    return x, jax.device_count(), str(jnp.arange(x).sum())


def test_trials_in_parallel_processes_give_the_inline_results(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PYTHONPATH", f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    envs = device_environments(3, 1)
    assert len(envs) == 3 and "device_count=1" in envs[0]["XLA_FLAGS"]
    items = [3, 4, 5, 6]
    parallel = run_trials(
        device_report, items, Execution("local", parallel=2, folder=str(tmp_path))
    )
    inline = [device_report(x) for x in items]
    assert [(x, s) for x, _, s in parallel] == [(x, s) for x, _, s in inline]
    assert {n for _, n, _ in parallel} == {1}  # each trial process sees one device
