"""This process's batches: the native loader through the Grain preprocessing, per shard.

Training (`TrainStream`): endless, weighted (``training_balance``), augmented batches. A process
reads ``loader_workers`` shards of the Interleaver (shard = rank · workers + worker) and its
share of the global batch is their concatenation; ``get_state``/``set_state`` (the Grain
iterators' states) make a resumed run read exactly the batches an uninterrupted one reads.
Because shards depend only on (rank · workers + worker), one process with 2 workers reads
the same global batches as two processes with one worker each.

Evaluation (`eval_batches`): every tile of the dataset's shard once, in stored order, with slide
names and locations, the last batch padded to full size (``valid`` says which rows are real).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from jaxwsi.dataset import Dataset
from jaxwsi.train.targets import Targets


def _pipeline(
    dataset: Dataset, labels: Mapping[str, Any], *, augment: Any, normalizer: Any, **loader: Any
) -> Any:
    """Interleaver → Grain preprocessing (normalizer, augmentation, standardization); the
    augmentation draws are seeded by the loader's seed and each batch's index."""
    from jaxwsi.pipeline import preprocess

    source = dataset.grain(labels, **loader)
    return preprocess(
        source, normalizer=normalizer, augment=augment or False, seed=loader.get("seed", 0)
    )


class TrainStream:
    """Endless training batches of ``batch_size`` rows for this process (model batch dicts)."""

    def __init__(
        self,
        dataset: Dataset,
        targets: Targets,
        *,
        batch_size: int,
        seed: int,
        augment: str | None,
        normalizer: Any,
        loader_workers: int = 1,
        drop_images: bool = False,
    ) -> None:
        if batch_size % loader_workers:
            raise ValueError(
                f"the process batch size {batch_size} does not split over "
                f"{loader_workers} loader workers"
            )
        labels = targets.slide_vectors(dataset.annotations)
        self._targets = targets
        self._drop_images = drop_images
        self._iterators = [
            iter(
                _pipeline(
                    dataset,
                    labels,
                    augment=augment,
                    normalizer=normalizer,
                    seed=seed,
                    batch_size=batch_size // loader_workers,
                    infinite=True,
                    worker=w,
                    num_workers=loader_workers,
                )
            )
            for w in range(loader_workers)
        ]

    def __iter__(self) -> TrainStream:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        parts = [next(it) for it in self._iterators]
        labels = np.concatenate([p["label"] for p in parts])
        batch = self._targets.split(labels)
        if not self._drop_images:
            batch["image"] = np.concatenate([p["image"] for p in parts])
        return batch

    def get_state(self) -> list[dict[str, Any]]:
        return [it.get_state() for it in self._iterators]

    def set_state(self, state: list[dict[str, Any]]) -> None:
        if len(state) != len(self._iterators):
            raise ValueError(
                f"the saved loader state has {len(state)} workers, this run {len(self._iterators)}"
            )
        for it, s in zip(self._iterators, state, strict=True):
            it.set_state(s)


def eval_batches(
    dataset: Dataset,
    targets: Targets,
    *,
    batch_size: int,
    normalizer: Any,
    with_labels: bool = True,
    drop_images: bool = False,
) -> Iterator[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """(model batch, info) per batch of this process's shard: info holds ``slide``, ``loc_x``,
    ``loc_y``, ``valid`` (False on padding) and the ``y``/``event`` labels (``with_labels``)."""
    labels = targets.slide_vectors(dataset.annotations, labels=with_labels)
    pipeline = _pipeline(
        dataset,
        labels,
        augment=None,
        normalizer=normalizer,
        batch_size=batch_size,
        infinite=False,
        shuffle=False,
        drop_remainder=False,
        incl_slidenames=True,
        incl_loc=True,
    )
    for part in pipeline:
        n = len(part["slide"])
        pad = batch_size - n
        info = {k: part[k] for k in ("slide", "loc_x", "loc_y")}
        info["valid"] = np.arange(batch_size) < n
        batch = targets.split(np.pad(part["label"], [(0, pad), (0, 0)]), with_labels)
        for key in ("y", "event"):  # labels stay on the host
            if key in batch:
                info[key] = batch.pop(key)[:n]
        if not drop_images:
            batch["image"] = np.pad(part["image"], [(0, pad)] + [(0, 0)] * 3)
        yield batch, info
