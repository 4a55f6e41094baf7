"""What the model learns from each slide: outcome labels, the survival event, clinical inputs.

The loader attaches one float vector per slide to each tile (``label``); `Targets` decides its
layout: one entry per outcome (the class index, the regression target or the survival time),
then the event indicator (survival), then the clinical inputs (``input_header``: numeric columns
as they are, categorical ones one-hot, Slideflow's ``input_feature_sizes``). `Targets.split`
turns a loader batch into the model's batch dict. Everything here is plain data: it pickles
(Grain workers) and round-trips through ``params.json`` (`to_dict` / `from_dict`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from jaxwsi.dataset import Dataset
from jaxwsi.dataset.errors import DatasetError
from jaxwsi.dataset.labels import as_headers, category_text, checked_values, is_float_column


@dataclass(frozen=True)
class Targets:
    """The label layout (see the module docstring) and what it needs to build the model."""

    outcomes: list[str]
    model_type: str
    outcome_labels: dict[str, list[str]]  # per outcome: class names ([] when continuous)
    event_header: str | None = None
    input_features: list[str] | None = None
    input_feature_sizes: list[int] | None = None
    input_feature_labels: dict[str, list[str]] | None = None  # categorical inputs' classes

    @property
    def num_classes(self) -> list[int]:
        """Output width per outcome (1 for regression and survival)."""
        return [max(1, len(self.outcome_labels[o])) for o in self.outcomes]

    @property
    def num_clinical(self) -> int:
        return sum(self.input_feature_sizes or [])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Targets:
        return cls(**dict(values))

    # ---- per-slide vectors and batches ----

    def slide_vectors(self, table: pd.DataFrame, labels: bool = True) -> dict[str, list[float]]:
        """Slide → label vector for the annotation rows ``table``; without ``labels`` only the
        clinical inputs (prediction on slides of unknown outcome)."""
        columns: list[np.ndarray] = [np.zeros(len(table), np.float32)]  # never empty
        for outcome in self.outcomes if labels else []:
            values = checked_values(table, outcome)
            if self.model_type == "classification":
                index = {c: i for i, c in enumerate(self.outcome_labels[outcome])}
                text = values.map(category_text)
                unknown = sorted(set(text) - set(index))
                if unknown:
                    raise DatasetError(
                        f"outcome {outcome!r} has values {unknown} unseen in training "
                        f"(classes: {self.outcome_labels[outcome]})"
                    )
                columns.append(text.map(index).to_numpy(np.float32))
            else:
                columns.append(_floats(values, outcome))
        if self.event_header is not None and labels:
            columns.append(_floats(checked_values(table, self.event_header), self.event_header))
        for feature in self.input_features or []:
            values = checked_values(table, feature)
            classes = (self.input_feature_labels or {}).get(feature)
            if classes:
                text = values.map(category_text).to_numpy()
                columns.extend((text == c).astype(np.float32) for c in classes)
            else:
                columns.append(_floats(values, feature))
        matrix = np.stack(columns, axis=1)[:, 1:] if len(columns) > 1 else np.stack(columns, 1)
        return {s: [float(v) for v in row] for s, row in zip(table["slide"], matrix, strict=True)}

    def split(self, labels: np.ndarray, with_labels: bool = True) -> dict[str, np.ndarray]:
        """A batch's ``label`` rows (of `slide_vectors` with ``labels=with_labels``) → ``y``
        [B, outcomes], ``event`` [B], ``clinical`` [B, C]."""
        out: dict[str, np.ndarray] = {}
        n = 0
        if with_labels:
            n = len(self.outcomes)
            out["y"] = labels[:, :n].astype(np.float32)
        if self.event_header is not None and with_labels:
            out["event"] = labels[:, n].astype(np.float32)
            n += 1
        if self.num_clinical:
            out["clinical"] = labels[:, n : n + self.num_clinical].astype(np.float32)
        return out


def _floats(values: pd.Series, header: str) -> np.ndarray:
    try:
        return values.astype(float).to_numpy(np.float32)
    except (TypeError, ValueError):
        raise DatasetError(f"column {header!r} must be numeric, got {list(values[:3])}") from None


def build_targets(
    datasets: Sequence[Dataset],
    outcomes: str | Sequence[str],
    model_type: str,
    *,
    event_header: str | None = None,
    input_header: str | Sequence[str] | None = None,
) -> Targets:
    """The layout for ``outcomes`` over the slides of ``datasets`` (training and validation:
    class indices are assigned over both, sorted as Slideflow does)."""
    outcomes = as_headers(outcomes)
    table = pd.concat([d.annotations for d in datasets]).drop_duplicates("slide")
    labels: dict[str, list[str]] = {}
    for outcome in outcomes:
        values = checked_values(table, outcome)
        labels[outcome] = (
            sorted(set(values.map(category_text))) if model_type == "classification" else []
        )
    if model_type == "survival":
        if event_header is None:
            raise DatasetError("a survival model needs event_header= (the event column, 1/0)")
        if len(outcomes) != 1:
            raise DatasetError(f"a survival model has one time outcome, got {outcomes}")
        checked_values(table, event_header)
    elif event_header is not None:
        raise DatasetError(f"event_header={event_header!r} is only for survival models")
    features = as_headers(input_header) if input_header is not None else None
    sizes, feature_labels = None, None
    if features:
        sizes, feature_labels = [], {}
        for feature in features:
            values = checked_values(table, feature)
            if is_float_column(values):
                sizes.append(1)
            else:
                classes = sorted(set(values.map(category_text)))
                feature_labels[feature] = classes
                sizes.append(len(classes))
    return Targets(
        outcomes=outcomes,
        model_type=model_type,
        outcome_labels=labels,
        event_header=event_header,
        input_features=features,
        input_feature_sizes=sizes,
        input_feature_labels=feature_labels,
    )
