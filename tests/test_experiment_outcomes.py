"""Cross-validation with the three outcome types (classification, regression, Cox survival with
the event column as input_header) and training from slides, on a tiny synthetic project."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from experiment_data import HP, OUTCOME, QUIET, TILE_PX, TILE_UM, make_project

import jaxwsi
from jaxwsi.dataset.errors import DatasetError


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> jaxwsi.Project:
    return make_project(tmp_path_factory.mktemp("outcomes"))


def test_regression_fold(project) -> None:
    hp = jaxwsi.ModelParams(**HP, loss="mean_squared_error")
    ((name, results),) = project.train("score", hp, val_k_fold=3, val_k=1, **QUIET).items()
    assert name == "00000-score-HP0-kfold1"
    metrics = results["epoch2"]
    assert {"tile_r_squared", "slide_r_squared", "patient_r_squared"} <= set(metrics)
    assert np.isfinite(metrics["slide_r_squared"]["score"])
    tiles = pd.read_parquet(project.models_dir / name / "tile_predictions_val_epoch2.parquet")
    assert {"score-y_pred0", "score-y_true"} <= set(tiles.columns)


def test_survival_fold_uses_the_event_column(project) -> None:
    hp = jaxwsi.ModelParams(**HP, loss="negative_log_likelihood")
    with pytest.raises(DatasetError, match="event column as input_header"):
        project.train("time", hp, **QUIET)
    results = project.train("time", hp, input_header="event", val_k_fold=3, val_k=2, **QUIET)
    ((name, epochs),) = results.items()
    metrics = epochs["epoch2"]
    assert 0.0 <= metrics["patient_c_index"]["time"] <= 1.0
    # Tumour patients have the shorter times: over all patients (this fold's validation may
    # hold one class only) the model gives each of them a higher risk than any stroma patient.
    everyone = project.evaluate(name, "time")
    assert 0.0 <= everyone["patient_c_index"]["time"] <= 1.0
    risk = pd.read_parquet(project.models_dir / name / "patient_predictions_eval.parquet")
    tumour = risk["patient"].isin(["p1", "p3", "p5"])
    assert risk.loc[tumour, "time-y_pred0"].min() > risk.loc[~tumour, "time-y_pred0"].max()
    params = pd.read_json(project.models_dir / name / "params.json", typ="series")
    assert params["model_type"] == "survival"


def test_from_wsi_learns_the_two_classes(project) -> None:
    hp = jaxwsi.ModelParams(**HP)
    results = project.train(OUTCOME, hp, from_wsi=True, val_k_fold=3, val_k=[1, 2], **QUIET)
    assert len(results) == 2
    for name, epochs in results.items():
        metrics = epochs["epoch2"]
        assert np.mean(metrics["slide_auc"][OUTCOME]) == 1.0, name
        assert np.mean(metrics["tile_auc"][OUTCOME]) > 0.95, name
        params = pd.read_json(project.models_dir / name / "params.json", typ="series")
        assert params["from_wsi"]
    refs = project.root / "wsi_tiles" / f"{TILE_PX}px_{TILE_UM}um"
    assert len(list(refs.glob("*.tfrecords"))) == len(project.slide_paths())
    # the model folder is enough to evaluate from the slides again
    metrics = project.evaluate(next(iter(results)), OUTCOME, filters={"patient": ["p0", "p1"]})
    assert np.mean(metrics["slide_auc"][OUTCOME]) == 1.0
