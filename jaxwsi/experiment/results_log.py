"""``results_log.csv``: one row per model and evaluated epoch, in the project and each model
folder, merged the way Slideflow's ``util.update_results_log`` does.

Rows are keyed ``{model_name}-epoch{N}`` (a re-run of that model and epoch replaces its row);
columns are ``model_name``, ``epoch`` and the sorted union of every metric name. Nested values
(per-class lists, the train/val metric dicts) are stored as JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from jaxwsi.atomic import write_text_atomic

RESULTS_LOG = "results_log.csv"


def _cell(value: Any) -> Any:
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True, default=float)
    return value


def flatten_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``{"tile_auc": {"y": [0.9, 0.9]}}`` → ``{"tile_auc-y": "[0.9, 0.9]"}``: one column per
    metric and outcome; other values unchanged (lists as JSON)."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping) and key not in ("train_metrics", "val_metrics"):
            for outcome, per_outcome in value.items():
                flat[f"{key}-{outcome}"] = _cell(per_outcome)
        else:
            flat[key] = _cell(value)
    return flat


def update_results_log(
    path: str | Path, model_name: str, epoch_results: Mapping[Any, Mapping[str, Any]]
) -> pd.DataFrame:
    """Merge ``{epoch: metrics}`` of one model into the log at ``path`` (atomic); returns it."""
    path = Path(path)
    table = pd.read_csv(path, dtype={"model_name": str}) if path.is_file() else pd.DataFrame()
    rows = {}
    if len(table):
        for record in table.to_dict("records"):
            rows[f"{record['model_name']}-epoch{record['epoch']}"] = record
    for epoch, metrics in epoch_results.items():
        epoch_number = int(str(epoch).removeprefix("epoch"))
        row = {"model_name": model_name, "epoch": epoch_number, **flatten_metrics(metrics)}
        rows[f"{model_name}-epoch{epoch_number}"] = row
    merged = pd.DataFrame(list(rows.values()))
    others = sorted(c for c in merged.columns if c not in ("model_name", "epoch"))
    merged = merged[["model_name", "epoch", *others]]
    write_text_atomic(path, merged.to_csv(index=False))
    return merged
