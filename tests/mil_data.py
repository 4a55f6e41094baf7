"""Synthetic MIL cohorts for the MIL tests: slides whose bag is positive when it holds a few key
instances (or whose continuous targets are values carried by them), with tiny TFRecords (so they
form a real `Dataset`) and feature bags on disk; two synthetic whole-slide images with bags from
the `Tiny` extractor."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax import nnx

from jaxwsi.dataset import Dataset
from jaxwsi.io import TFRecordWriter
from jaxwsi.mil import extract_features, write_bag
from jaxwsi.models import Preprocessing
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


def key_value_bags(
    num_slides: int, *, num_features: int = 8, seed: int = 0
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, int, np.ndarray]], dict[str, dict[str, float]]]:
    """(bags as `key_instance_bags` gives them, columns ``target`` and ``target2``: slide → the
    mean of feature 1, and of feature 2, over the bag's key instances).

    Every bag has 16–32 instances ~ N(0, 1) but 2–4 key instances: `KEY_SHIFT` on feature 0,
    the bag's two values ~ N(0, 1) on features 1 and 2, each with N(0, 0.1²) noise, and that
    noise alone on the other features."""
    rng = np.random.default_rng(seed)
    bags = {}
    columns: dict[str, dict[str, float]] = {"target": {}, "target2": {}}
    for i in range(num_slides):
        n = int(rng.integers(16, 33))
        features = rng.normal(size=(n, num_features)).astype(np.float32)
        keys = rng.choice(n, int(rng.integers(2, 5)), replace=False)
        features[keys] = 0.1 * rng.normal(size=(len(keys), num_features))
        features[keys, 0] += KEY_SHIFT
        features[keys, 1:3] += rng.normal(size=2)
        side = int(np.ceil(np.sqrt(n)))
        locations = np.stack([np.arange(n) % side, np.arange(n) // side], 1) * 100 + 50
        slide = f"s{i:03d}"
        bags[slide] = (features, locations.astype(np.int64), i % 2, keys)
        columns["target"][slide] = float(features[keys, 1].mean())
        columns["target2"][slide] = float(features[keys, 2].mean())
    return bags, columns


def write_cohort(
    root: Path,
    bags: dict[str, tuple[np.ndarray, np.ndarray, int, np.ndarray]],
    *,
    patients: dict[str, str] | None = None,
    tiles_per_slide: int = 2,
    write_bags: bool = True,
    columns: dict[str, dict[str, object]] | None = None,
) -> tuple[Dataset, Path]:
    """TFRecords of ``tiles_per_slide`` 16-px tiles, annotations (plus ``columns``: column →
    slide → value) and (optionally) the bags in ``root/bags``; returns (dataset, bags folder)."""
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
        row = {"patient": patient, "slide": slide, "label": ["neg", "pos"][label]}
        rows.append(row | {c: values[slide] for c, values in (columns or {}).items()})
    pd.DataFrame(rows).to_csv(root / "annotations.csv", index=False)
    return Dataset(root / "annotations.csv", tfrecords, tile_px=16, tile_um=32), bag_dir


class Tiny(nnx.Module):
    """A 4-feature extractor: convolution, then global mean."""

    def __init__(self, seed: int = 0):
        self.conv = nnx.Conv(3, 4, (3, 3), rngs=nnx.Rngs(seed))
        self.num_features = 4
        self.preprocessing = Preprocessing(size=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))

    def __call__(self, x):
        return jnp.mean(self.conv(x), axis=(1, 2))


def slide_cohort(root: Path, column: str, values: list[object]) -> tuple[list[Path], Dataset]:
    """Two synthetic whole-slide images ``root/slide{0,1}.tiff`` (tissue classes 0 and 1),
    their 16-px tiles at 64 µm, annotations with ``column`` = ``values`` and `Tiny` bags in
    ``root/bags``; returns (slide paths, dataset)."""
    from jaxwsi.slide import extract_tiles
    from jaxwsi.testing import synthetic_slide

    slides = [
        synthetic_slide(root / f"slide{i}.tiff", width=1024, height=768, mpp=0.5,
                        tissue_class=i, seed=i, num_levels=2)
        for i in range(2)
    ]  # fmt: skip
    extract_tiles(slides, root / "tiles", 16, 64, img_format="png", num_workers=0,
                  progress=False)  # fmt: skip
    pd.DataFrame({"patient": ["a", "b"], "slide": ["slide0", "slide1"], column: values}).to_csv(
        root / "ann.csv", index=False
    )
    dataset = Dataset(root / "ann.csv", root / "tiles" / "16px_64um", tile_px=16, tile_um=64)
    extract_features(Tiny(), dataset, root / "bags", min_tiles=1, progress=False)
    return slides, dataset
