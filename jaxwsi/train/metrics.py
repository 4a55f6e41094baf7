"""Validation metrics from prediction tables, with scikit-learn and lifelines.

Tables have Slideflow's columns (`jaxwsi.train.outputs`): ``slide``, ``patient``,
``{outcome}-y_true``, ``{outcome}-y_pred{i}`` (softmax probabilities; the value for
regression; the log-risk for survival) and, for survival, ``{event}-y_true``. Slide and patient
rows are the mean of their tiles' predictions (`group_predictions`). Per outcome:
classification → one-vs-rest AUROC and average precision per class, accuracy; regression → R²;
survival → Harrell's C-index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

LEVELS = ("tile", "slide", "patient")


def pred_columns(table: pd.DataFrame, outcome: str) -> list[str]:
    """``{outcome}-y_pred{i}`` columns in class order."""
    prefix = f"{outcome}-y_pred"
    columns = [c for c in table.columns if c.startswith(prefix) and c[len(prefix) :].isdigit()]
    return sorted(columns, key=lambda c: int(c[len(prefix) :]))


def group_predictions(tiles: pd.DataFrame, level: str) -> pd.DataFrame:
    """Slide or patient rows: the mean of the predictions (and uncertainty) of all their tiles,
    the first of the other columns (labels, patient)."""
    if level == "tile":
        return tiles
    key = {"slide": "slide", "patient": "patient"}[level]
    numeric = [c for c in tiles.columns if "-y_pred" in c or "-uncertainty" in c]
    others = [c for c in tiles.columns if c not in numeric and c not in (key, "loc_x", "loc_y")]
    if level == "patient":
        others = [c for c in others if c != "slide"]
    grouped = tiles.groupby(key, sort=True)
    table = grouped[numeric].mean()
    if others:
        table = grouped[others].first().join(table)
    return table.reset_index()


def _classification(table: pd.DataFrame, outcome: str) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    probs = table[pred_columns(table, outcome)].to_numpy(np.float64)
    y_true = table[f"{outcome}-y_true"].to_numpy().astype(int)
    aucs, aps = [], []
    for i in range(probs.shape[1]):
        positive = y_true == i
        if positive.all() or not positive.any():  # AUROC undefined with one class present
            aucs.append(float("nan"))
            aps.append(float("nan"))
            continue
        aucs.append(float(roc_auc_score(positive, probs[:, i])))
        aps.append(float(average_precision_score(positive, probs[:, i])))
    accuracy = float(np.mean(probs.argmax(axis=1) == y_true))
    return {"auc": aucs, "ap": aps, "accuracy": accuracy}


def _regression(table: pd.DataFrame, outcome: str) -> dict[str, Any]:
    from sklearn.metrics import r2_score

    y_true = table[f"{outcome}-y_true"].to_numpy(np.float64)
    y_pred = table[f"{outcome}-y_pred0"].to_numpy(np.float64)
    return {"r_squared": float(r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan")}


def _survival(table: pd.DataFrame, outcome: str, event: str) -> dict[str, Any]:
    from lifelines.utils import concordance_index

    times = table[f"{outcome}-y_true"].to_numpy(np.float64)
    risk = table[f"{outcome}-y_pred0"].to_numpy(np.float64)
    events = table[f"{event}-y_true"].to_numpy(np.float64)
    try:  # a higher risk means a shorter survival time
        return {"c_index": float(concordance_index(times, -risk, events))}
    except ZeroDivisionError:  # no comparable pairs
        return {"c_index": float("nan")}


def outcome_metrics(
    table: pd.DataFrame, outcome: str, model_type: str, event: str | None = None
) -> dict[str, Any]:
    """Metrics of one outcome on one table (tile, slide or patient rows)."""
    if model_type == "classification":
        return _classification(table, outcome)
    if model_type == "regression":
        return _regression(table, outcome)
    if event is None:
        raise ValueError("survival metrics need the event column")
    return _survival(table, outcome, event)


def evaluation_metrics(
    tiles: pd.DataFrame,
    outcomes: Sequence[str],
    model_type: str,
    event: str | None = None,
) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """(metrics, tables by level): ``{level}_{metric}`` → ``{outcome: value}`` as Slideflow's
    results log has them (``tile_auc``, ``slide_ap``, ``patient_r_squared``, ...), plus
    ``accuracy`` (tile level) for classification."""
    tables = {level: group_predictions(tiles, level) for level in LEVELS}
    metrics: dict[str, Any] = {}
    for level, table in tables.items():
        for outcome in outcomes:
            for name, value in outcome_metrics(table, outcome, model_type, event).items():
                if name == "accuracy":
                    if level == "tile":
                        metrics.setdefault("accuracy", {})[outcome] = value
                    continue
                metrics.setdefault(f"{level}_{name}", {})[outcome] = value
    return metrics, tables
