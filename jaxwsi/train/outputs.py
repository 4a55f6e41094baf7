"""The files a tile model folder holds, named and laid out as Slideflow writes them.

- ``params.json``: the hyperparameters (``hp``), the label layout (outcomes, outcome_labels,
  input features), tile size, model type and the normalizer fit (``norm_fit``).
- ``slide_manifest.csv``: slide, dataset (training / validation), outcome_label.
- ``{tile,slide,patient}_predictions_{label}.parquet``: ``slide``, ``loc_x``/``loc_y`` (tiles),
  ``{outcome}-y_true``, ``{outcome}-y_pred{i}``, ``{outcome}-uncertainty{i}`` (uq),
  ``{event}-y_true`` (survival), ``patient``.
- ``{label}_{outcome}_{level}_ROC{i}.png``: ROC curves (matplotlib, Agg canvas).
Every file is written atomically.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jaxwsi.atomic import write_bytes_atomic, write_text_atomic
from jaxwsi.dataset import Dataset
from jaxwsi.train.metrics import pred_columns
from jaxwsi.train.targets import Targets

PARAMS_JSON = "params.json"


def write_params(outdir: Path, content: Mapping[str, Any]) -> None:
    write_text_atomic(outdir / PARAMS_JSON, json.dumps(content, indent=2, default=str) + "\n")


def read_params(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / PARAMS_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir} is not a model folder: no {PARAMS_JSON}")
    return json.loads(path.read_text())


def write_manifest(outdir: Path, targets: Targets, train: Dataset, val: Dataset | None) -> None:
    """``slide_manifest.csv``; the outcome label is the class name (or value), outcomes joined
    by '-' as Slideflow joins them."""
    rows = []
    for split, dataset in (("training", train), ("validation", val)):
        if dataset is None:
            continue
        table = dataset.annotations
        for _, row in table.iterrows():
            label = "-".join(str(row[o]) for o in targets.outcomes)
            rows.append({"slide": row["slide"], "dataset": split, "outcome_label": label})
    frame = pd.DataFrame(rows, columns=["slide", "dataset", "outcome_label"])
    write_text_atomic(outdir / "slide_manifest.csv", frame.to_csv(index=False))


def tile_predictions(
    targets: Targets,
    info: Mapping[str, np.ndarray],
    outputs: np.ndarray,
    uncertainty: np.ndarray | None,
    patients: Mapping[str, str],
) -> pd.DataFrame:
    """The tile table from gathered predictions: ``outputs`` [N, sum(num_classes)] (softmax
    probabilities per classification outcome), ``info`` with slide, loc_x, loc_y and, when
    labelled, ``y`` [N, outcomes] and ``event`` [N]."""
    columns: dict[str, Any] = {
        "slide": info["slide"],
        "loc_x": info["loc_x"],
        "loc_y": info["loc_y"],
    }
    start = 0
    for i, (outcome, width) in enumerate(zip(targets.outcomes, targets.num_classes, strict=True)):
        if "y" in info:
            y = info["y"][:, i]
            columns[f"{outcome}-y_true"] = (
                y.astype(int) if targets.model_type == "classification" else y
            )
        for j in range(width):
            columns[f"{outcome}-y_pred{j}"] = outputs[:, start + j]
        if uncertainty is not None:
            for j in range(width):
                columns[f"{outcome}-uncertainty{j}"] = uncertainty[:, start + j]
        start += width
    if targets.event_header is not None and "event" in info:
        columns[f"{targets.event_header}-y_true"] = info["event"].astype(int)
    frame = pd.DataFrame(columns)
    frame["patient"] = frame["slide"].map(patients)
    return frame


def write_predictions(outdir: Path, tables: Mapping[str, pd.DataFrame], label: str) -> list[Path]:
    """``{level}_predictions_{label}.parquet`` (``label`` empty: ``{level}_predictions``)."""
    paths = []
    for level, table in tables.items():
        name = f"{level}_predictions{'_' + label if label else ''}.parquet"
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        write_bytes_atomic(outdir / name, buffer.getvalue())
        paths.append(outdir / name)
    return paths


def write_roc_curves(
    outdir: Path, tables: Mapping[str, pd.DataFrame], targets: Targets, label: str
) -> None:
    """One ROC PNG per outcome, level and class (classification only)."""
    if targets.model_type != "classification":
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_auc_score, roc_curve

    for level, table in tables.items():
        for outcome in targets.outcomes:
            y_true = table[f"{outcome}-y_true"].to_numpy().astype(int)
            for i, column in enumerate(pred_columns(table, outcome)):
                positive = y_true == i
                if positive.all() or not positive.any():
                    continue
                fpr, tpr, _ = roc_curve(positive, table[column])
                auc = roc_auc_score(positive, table[column])
                figure = Figure(figsize=(4, 4))
                FigureCanvasAgg(figure)
                axes = figure.add_subplot()
                axes.plot(fpr, tpr, label=f"AUC {auc:.3f}")
                axes.plot([0, 1], [0, 1], "--", color="gray")
                axes.set(xlabel="false positive rate", ylabel="true positive rate")
                axes.set_title(f"{outcome} ({level}), class {targets.outcome_labels[outcome][i]}")
                axes.legend(loc="lower right")
                buffer = io.BytesIO()
                figure.savefig(buffer, format="png", dpi=72)
                write_bytes_atomic(
                    outdir / f"{label}_{outcome}_{level}_ROC{i}.png", buffer.getvalue()
                )
