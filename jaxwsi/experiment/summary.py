"""The metrics table printed after training: one row per model, its last evaluated epoch, one
column per scalar metric (per-outcome and per-class values averaged)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

_EPOCH = re.compile(r"(\d+)$")


def _scalar(value: Any) -> float | None:
    if isinstance(value, Mapping):
        values = [_scalar(v) for v in value.values()]
        numbers = [v for v in values if v is not None]
        return float(np.mean(numbers)) if numbers else None
    if isinstance(value, list | tuple):
        try:
            return float(np.nanmean(np.asarray(value, dtype=np.float64)))
        except (TypeError, ValueError):
            return None
    if isinstance(value, int | float | np.number) and not isinstance(value, bool):
        return float(value)
    return None


def _expanded(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``train_metrics``/``val_metrics`` dicts as ``train_loss``, ``val_accuracy``, ..."""
    out: dict[str, Any] = {}
    for name, value in metrics.items():
        if name in ("train_metrics", "val_metrics") and isinstance(value, Mapping):
            prefix = name.removesuffix("_metrics")
            out.update({f"{prefix}_{k}": v for k, v in value.items()})
        else:
            out[name] = value
    return out


def metrics_table(results: Mapping[str, Mapping[Any, Mapping[str, Any]]]) -> pd.DataFrame:
    """``{model: {epoch: metrics}}`` → a DataFrame (model, epoch, metrics...)."""
    rows = []
    for model, epochs in results.items():
        if not epochs:
            rows.append({"model": model})
            continue
        key = max(epochs, key=lambda k: int(m[1]) if (m := _EPOCH.search(str(k))) else -1)
        match = _EPOCH.search(str(key))
        row: dict[str, Any] = {"model": model, "epoch": int(match[1]) if match else key}
        for name, value in _expanded(epochs[key]).items():
            scalar = _scalar(value)
            if scalar is not None:
                row[name] = round(scalar, 4)
        rows.append(row)
    return pd.DataFrame(rows)
