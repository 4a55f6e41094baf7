"""Validation metrics: slide/patient rows are the mean over all their tiles; scores from
scikit-learn and lifelines."""

from __future__ import annotations

import numpy as np
import pandas as pd
from lifelines.utils import concordance_index
from sklearn.metrics import roc_auc_score

from jaxwsi.train.metrics import evaluation_metrics, group_predictions


def tiles_frame():
    rng = np.random.default_rng(0)
    rows = []
    # patient a: slides a1 (3 tiles) and a2 (1 tile); patient b: slide b1 (2 tiles)
    for slide, patient, label, n in [("a1", "a", 1, 3), ("a2", "a", 1, 1), ("b1", "b", 0, 2)]:
        for i in range(n):
            p1 = float(rng.uniform(0.4, 1.0) if label else rng.uniform(0.0, 0.6))
            rows.append(
                {
                    "slide": slide,
                    "loc_x": i,
                    "loc_y": 0,
                    "y-y_true": label,
                    "y-y_pred0": 1 - p1,
                    "y-y_pred1": p1,
                    "patient": patient,
                }
            )
    return pd.DataFrame(rows)


def test_patient_is_the_mean_of_all_tiles_not_of_slides():
    tiles = tiles_frame()
    patients = group_predictions(tiles, "patient").set_index("patient")
    a = tiles[tiles.patient == "a"]["y-y_pred1"].mean()
    assert np.isclose(patients.loc["a", "y-y_pred1"], a)
    slides = group_predictions(tiles, "slide").set_index("slide")
    assert np.isclose(slides.loc["a1", "y-y_pred1"], tiles[tiles.slide == "a1"]["y-y_pred1"].mean())
    assert slides.loc["a2", "patient"] == "a" and "loc_x" not in slides


def test_classification_metrics_per_class_and_level():
    tiles = tiles_frame()
    metrics, tables = evaluation_metrics(tiles, ["y"], "classification")
    expected = roc_auc_score(tiles["y-y_true"], tiles["y-y_pred1"])
    assert np.isclose(metrics["tile_auc"]["y"][1], expected)
    assert np.isclose(metrics["tile_auc"]["y"][0], expected)  # two classes: symmetric
    assert len(tables["slide"]) == 3 and len(tables["patient"]) == 2
    assert 0 <= metrics["accuracy"]["y"] <= 1 and len(metrics["patient_ap"]["y"]) == 2


def test_regression_and_survival_metrics():
    rng = np.random.default_rng(1)
    n = 40
    times = rng.exponential(size=n)
    tiles = pd.DataFrame(
        {
            "slide": [f"s{i % 8}" for i in range(n)],
            "patient": [f"p{i % 4}" for i in range(n)],
            "t-y_true": times,
            "t-y_pred0": -times + rng.normal(0, 0.3, n),
            "event-y_true": (rng.random(n) < 0.8).astype(int),
        }
    )
    metrics, _ = evaluation_metrics(tiles, ["t"], "survival", event="event")
    expected = concordance_index(times, -tiles["t-y_pred0"], tiles["event-y_true"])
    assert np.isclose(metrics["tile_c_index"]["t"], expected) and expected > 0.7
    reg = tiles.copy()
    reg["t-y_pred0"] = times + rng.normal(0, 0.1, n)
    metrics, _ = evaluation_metrics(reg, ["t"], "regression")
    assert 0.8 < metrics["tile_r_squared"]["t"] <= 1.0


def test_early_stop_ema_as_slideflow():
    """SMA of the first 3 checks, then an EMA; stops once the EMA is no better than two checks
    earlier, and only past the patience."""
    from jaxwsi.train.early_stop import EarlyStop

    losses = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.7, 0.9, 1.1, 1.3]
    stop = EarlyStop(method="loss", patience=0, observations=3, smoothing=2)
    stopped_at = next(i for i, v in enumerate(losses) if stop.update(v, progress_epochs=1.0))
    # EMA: 0.9 (SMA at i=2), then 0.8, 0.7, 0.6, 0.65, 0.775: 0.775 >= 0.6, two checks before.
    assert stopped_at == 7
    patient = EarlyStop(method="loss", patience=5, observations=3)
    assert not any(patient.update(v, progress_epochs=1.0) for v in losses)
    accuracy = EarlyStop(method="accuracy", observations=3)
    assert not any(accuracy.update(v, 1.0) for v in [0.5, 0.6, 0.7, 0.8, 0.9])
    again = EarlyStop(**stop.state())
    assert again == stop
