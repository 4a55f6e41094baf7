"""Synthetic MIL cohorts for the MIL tests: slides whose bag is positive when it holds a few key
instances, with tiny TFRecords (so they form a real `Dataset`) and feature bags on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from jaxwsi.dataset import Dataset
from jaxwsi.io import TFRecordWriter
from jaxwsi.mil import write_bag
from tests.interleaver_data import encode, tile

KEY_SHIFT = 4.0  # key instances are shifted this far along the first feature axis


def key_instance_bags(
    num_slides: int, *, num_features: int = 8, num_keys: int = 3, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray, int, np.ndarray]]:
    """slide → (features [n, D], locations [n, 2], label, indexes of the key instances).

    Every bag has 16–48 instances ~ N(0, 1); a positive bag (every other slide) has
    ``num_keys`` of them shifted by `KEY_SHIFT` along feature 0."""
    rng = np.random.default_rng(seed)
    bags = {}
    for i in range(num_slides):
        n = int(rng.integers(16, 49))
        features = rng.normal(size=(n, num_features)).astype(np.float32)
        label = i % 2
        keys = rng.choice(n, num_keys, replace=False) if label else np.array([], int)
        features[keys, 0] += KEY_SHIFT
        side = int(np.ceil(np.sqrt(n)))
        locations = np.stack([np.arange(n) % side, np.arange(n) // side], 1) * 100 + 50
        bags[f"s{i:03d}"] = (features, locations.astype(np.int64), label, keys)
    return bags


def write_cohort(
    root: Path,
    bags: dict[str, tuple[np.ndarray, np.ndarray, int, np.ndarray]],
    *,
    patients: dict[str, str] | None = None,
    tiles_per_slide: int = 2,
    write_bags: bool = True,
) -> tuple[Dataset, Path]:
    """TFRecords of ``tiles_per_slide`` 16-px tiles, annotations and (optionally) the bags in
    ``root/bags``; returns (dataset, bags folder)."""
    tfrecords = root / "tfrecords"
    bag_dir = root / "bags"
    tfrecords.mkdir(parents=True, exist_ok=True)
    bag_dir.mkdir(exist_ok=True)
    rows = []
    for i, (slide, (features, locations, label, _)) in enumerate(bags.items()):
        with TFRecordWriter(tfrecords / f"{slide}.tfrecords") as writer:
            for j in range(tiles_per_slide):
                writer.write(
                    {
                        "image_raw": encode(tile(100 * i + j)),
                        "slide": slide,
                        "loc_x": 100 * j + 50,
                        "loc_y": 50,
                    }
                )
        if write_bags:
            write_bag(bag_dir / f"{slide}.npz", features, locations)
        patient = (patients or {}).get(slide, f"p{slide}")
        rows.append({"patient": patient, "slide": slide, "label": ["neg", "pos"][label]})
    pd.DataFrame(rows).to_csv(root / "annotations.csv", index=False)
    return Dataset(root / "annotations.csv", tfrecords, tile_px=16, tile_um=32), bag_dir
