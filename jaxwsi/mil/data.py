"""Bags in memory for training and evaluation: labels, patient aggregation, batches.

Training batches (`train_batches`) are a pure function of (seed, epoch): bags in a shuffled
order, each a random sample of ``bag_size`` tiles without replacement (all tiles, zero-padded,
when fewer), with a mask of the real tiles. Evaluation batches (`eval_batches`) hold whole bags
grouped by length, padded to the next power of two, so only a few shapes are compiled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from jaxwsi.dataset import Dataset
from jaxwsi.dataset.errors import DatasetError
from jaxwsi.dataset.labels import as_headers, category_text, checked_values
from jaxwsi.messages import name_some
from jaxwsi.mil.bags import Bag, BagsSource, find_bags, load_bags
from jaxwsi.mil.errors import BagError, MILConfigError

MIN_BUCKET = 16  # smallest padded evaluation length
EVAL_TILES_PER_DEVICE = 32768  # bags × padded length per device in one evaluation batch


@dataclasses.dataclass
class MILData:
    """The bags of one split: one entry per slide (or patient) with its label."""

    names: list[str]  # slide or patient names
    features: list[np.ndarray]  # [n_i, D] float32
    locations: list[np.ndarray]  # [n_i, 2]
    slides: list[list[str]]  # the slides in each bag
    slide_lengths: list[list[int]]  # tiles of each of those slides (their order in the bag)
    # int [M] class indexes (-1 when unknown: prediction without outcomes), or float32 [M, K]
    # for K continuous outcomes (regression; NaN when unknown)
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    @property
    def num_features(self) -> int:
        return int(self.features[0].shape[1])


def outcome_labels(datasets: Sequence[Dataset | None], outcome: str) -> list[str]:
    """The sorted categories of ``outcome`` over all ``datasets`` (one label space for the
    training and validation sets, as text)."""
    values: set[str] = set()
    for ds in datasets:
        if ds is not None and len(ds):
            values.update(checked_values(ds.annotations, outcome).map(category_text))
    if len(values) < 2:
        raise BagError(f"outcome {outcome!r} needs at least 2 categories, found {sorted(values)}")
    return sorted(values)


def classification_outcome(outcomes: str | Sequence[str]) -> str:
    """The one categorical outcome of a classification model; several are refused, as
    Slideflow's MIL trainer refuses them."""
    headers = as_headers(outcomes)
    if len(headers) != 1:
        raise MILConfigError(
            f"MIL classification trains one categorical outcome, got {headers}: train one model "
            "per outcome, or use a regression loss (mse, mae, huber) for continuous outcomes"
        )
    return headers[0]


def continuous_labels(dataset: Dataset, outcomes: Sequence[str]) -> dict[str, np.ndarray]:
    """slide → float32 [K]: the values of the continuous ``outcomes`` (regression targets); a
    missing, non-numeric or non-finite value is an error naming the slide and the column."""
    columns = []
    for outcome in outcomes:
        try:
            values = checked_values(dataset.annotations, outcome)
        except DatasetError as err:
            raise BagError(f"regression outcome {outcome!r}: {err}") from err
        numbers = pd.Series([_number(v) for v in values], index=values.index)
        bad = values.index[~np.isfinite(numbers.to_numpy())]
        if len(bad):
            raise BagError(
                f"regression outcome {outcome!r} must be a finite number for every slide: "
                + ", ".join(f"slide {s} has {values[s]!r}" for s in bad[:5])
                + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            )
        columns.append(numbers)
    table = pd.concat(columns, axis=1).to_numpy(np.float32)
    return dict(zip(dataset.annotations["slide"], table, strict=True))


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def mil_data(
    dataset: Dataset,
    bags: BagsSource,
    *,
    outcome: str | Sequence[str] | None,
    categories: Sequence[str] | None,
    level: str = "slide",
) -> MILData:
    """Load ``dataset``'s bags. Labels are indexes into ``categories`` (-1 without outcome) or,
    with ``categories`` None, the values of the continuous ``outcome`` column(s), float32
    [M, K] (`continuous_labels`). At ``level="patient"`` a patient's bags are concatenated
    (slides in name order)."""
    slides = dataset.slides()
    if not slides:
        raise BagError("the dataset has no slides")
    loaded = load_bags(find_bags(bags, slides))
    label_of: dict[str, Any] = {}
    if outcome is not None and categories is None:
        label_of = continuous_labels(dataset, as_headers(outcome))
    elif outcome is not None and categories is not None:
        header = classification_outcome(outcome)
        index = {c: i for i, c in enumerate(categories)}
        values = checked_values(dataset.annotations, header).map(category_text)
        unknown = sorted({v for v in values if v not in index})
        if unknown:
            raise BagError(
                f"outcome {header!r} has categories {unknown} the model does not know "
                f"(it knows {list(categories)})"
            )
        label_of = {s: index[v] for s, v in values.items()}
    if level == "slide":
        groups = {s: [s] for s in slides}
    else:
        patients = dataset.patients()
        groups = {}
        for s in slides:
            groups.setdefault(patients[s], []).append(s)
    names = sorted(groups)
    return MILData(
        names=names,
        features=[_concat(loaded, groups[n], "features") for n in names],
        locations=[_concat(loaded, groups[n], "locations") for n in names],
        slides=[groups[n] for n in names],
        slide_lengths=[[len(loaded[s]) for s in groups[n]] for n in names],
        labels=(
            np.stack([label_of[groups[n][0]] for n in names])
            if categories is None and label_of
            else np.array([label_of.get(groups[n][0], -1) for n in names], np.int32)
        ),
    )


def _concat(bags: dict[str, Bag], slides: list[str], field: str) -> np.ndarray:
    parts = [getattr(bags[s], field) for s in slides]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Inverse-frequency weights, normalized to sum to 1 (Slideflow's ``weighted_loss``); an
    error names a class without training bags."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    if (counts == 0).any():
        raise BagError(
            f"classes {np.flatnonzero(counts == 0).tolist()} have no training bag; "
            "weighted_loss needs every class"
        )
    weights = counts.sum() / counts
    return (weights / weights.sum()).astype(np.float32)


def steps_per_epoch(num_bags: int, batch_size: int, drop_last: bool) -> int:
    """Batches per epoch; at least one (fewer bags than a batch: the batch repeats bags)."""
    full, rest = divmod(num_bags, batch_size)
    return max(1, full if drop_last or not rest else full + 1)


def train_batches(
    data: MILData, *, bag_size: int, batch_size: int, drop_last: bool, seed: int, epoch: int
) -> Iterator[dict[str, np.ndarray]]:
    """One epoch of training batches: ``bags`` [B, bag_size, D], ``mask`` [B, bag_size],
    ``label`` [B]. A last short batch (``drop_last=False``) is filled with repeated bags."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(data))
    for step in range(steps_per_epoch(len(data), batch_size, drop_last)):
        picked = order[step * batch_size : (step + 1) * batch_size]
        if len(picked) < batch_size:
            picked = np.resize(picked, batch_size)
        bags = np.zeros((batch_size, bag_size, data.num_features), np.float32)
        mask = np.zeros((batch_size, bag_size), bool)
        for row, i in enumerate(picked):
            features = data.features[i]
            n = len(features)
            tiles = rng.choice(n, bag_size, replace=False) if n > bag_size else np.arange(n)
            bags[row, : len(tiles)] = features[tiles]
            mask[row, : len(tiles)] = True
        yield {"bags": bags, "mask": mask, "label": data.labels[picked]}


def bucket_length(n: int) -> int:
    """Padded evaluation length: the next power of two, at least `MIN_BUCKET`."""
    return max(MIN_BUCKET, 1 << max(0, int(n - 1).bit_length()))


def eval_batches(
    data: MILData, *, devices: int, max_bag_size: int | None = None, seed: int = 0
) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """(indexes of the bags, batch) over whole bags grouped by padded length; the batch is
    padded with empty bags to a multiple of ``devices`` (the indexes say which rows are real).
    ``max_bag_size`` samples that many tiles (seeded) from longer bags."""
    rng = np.random.default_rng(seed)
    tiles = [
        rng.choice(len(f), max_bag_size, replace=False)
        if max_bag_size is not None and len(f) > max_bag_size
        else np.arange(len(f))
        for f in data.features
    ]
    lengths = np.array([bucket_length(len(t)) for t in tiles])
    for length in np.unique(lengths):
        members = np.flatnonzero(lengths == length)
        per_batch = devices * max(1, EVAL_TILES_PER_DEVICE // int(length))
        for start in range(0, len(members), per_batch):
            chunk = members[start : start + per_batch]
            rows = -(-len(chunk) // devices) * devices
            bags = np.zeros((rows, int(length), data.num_features), np.float32)
            mask = np.zeros((rows, int(length)), bool)
            for row, i in enumerate(chunk):
                bags[row, : len(tiles[i])] = data.features[i][tiles[i]]
                mask[row, : len(tiles[i])] = True
            yield chunk, {"bags": bags, "mask": mask}


def manifest(train: MILData, val: MILData | None, categories: Sequence[str] | None) -> pd.DataFrame:
    """``slide_manifest.csv``: slide, dataset (training / validation), outcome_label (the class
    name, or the continuous values joined by '-' as Slideflow joins outcomes)."""
    rows: list[dict[str, Any]] = []
    for split, data in (("training", train), ("validation", val)):
        if data is None:
            continue
        for slides, label in zip(data.slides, data.labels, strict=True):
            text = (
                "-".join(category_text(float(v)) for v in label)
                if categories is None
                else categories[label]
            )
            rows.extend({"slide": s, "dataset": split, "outcome_label": text} for s in slides)
    return pd.DataFrame(rows, columns=["slide", "dataset", "outcome_label"])


def check_disjoint(train: MILData, val: MILData) -> None:
    overlap = sorted({s for g in train.slides for s in g} & {s for g in val.slides for s in g})
    if overlap:
        raise BagError(
            f"{len(overlap)} slide(s) are in both training and validation: {name_some(overlap)}"
        )
