"""Shared by the tile-trainer tests: a small registered CNN with BatchNorm (``train_tiny``) and
a synthetic cohort of TFRecords whose tiles show their slide's class (stripes and colour)."""

from __future__ import annotations

import io
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax import nnx
from PIL import Image

import jaxwsi
from jaxwsi.dataset import Dataset
from jaxwsi.io import TFRecordWriter

TILE_PX = 32


class TrainTiny(nnx.Module):
    """conv → BatchNorm → ReLU → conv → global mean: 16 features; fast on a CPU."""

    def __init__(self, *, rngs, dtype=jnp.float32, param_dtype=jnp.float32, **_):
        # No bias before BatchNorm (its gradient is rounding noise, which Adam would amplify).
        self.conv1 = nnx.Conv(
            3,
            8,
            (3, 3),
            strides=2,
            use_bias=False,
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
        )
        # Running statistics that settle within the few steps of a test.
        self.bn = nnx.BatchNorm(8, momentum=0.5, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.conv2 = nnx.Conv(
            8, 16, (3, 3), strides=2, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        self.dtype = dtype
        self.num_features = 16
        self.block_paths = (("conv1",), ("bn",), ("conv2",))

    def __call__(self, x):
        x = nnx.relu(self.bn(self.conv1(x.astype(self.dtype))))
        return nnx.relu(self.conv2(x)).mean(axis=(1, 2))


jaxwsi.models.register("train_tiny")(lambda **kwargs: TrainTiny(**kwargs))


def tile_image(label: int, rng: np.random.Generator, px: int = TILE_PX) -> np.ndarray:
    """Class 0: pink with horizontal stripes; class 1: purple with vertical stripes; noisy."""
    base = np.array([[220, 150, 180], [120, 90, 180]][label], np.float32)
    stripes = (np.arange(px) // 4 % 2).astype(np.float32) * 40
    pattern = stripes[:, None] if label == 0 else stripes[None, :]
    image = base + pattern[..., None] + rng.normal(0, 25, (px, px, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def encode(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def write_cohort(
    root: Path,
    *,
    num_patients: int = 8,
    slides_per_patient: int = 1,
    tiles_per_slide: int = 24,
    seed: int = 0,
) -> Dataset:
    """Patients alternate classes; annotation columns: ``tissue`` (stroma/tumour), ``score``
    (continuous, by class), ``time``/``event`` (survival, shorter for tumour), ``marker``
    (numeric clinical input of unit scale that carries the class) and ``site`` (categorical)."""
    rng = np.random.default_rng(seed)
    tfrecords = root / "tfrecords"
    tfrecords.mkdir(parents=True, exist_ok=True)
    rows = []
    for p in range(num_patients):
        label = p % 2
        for s in range(slides_per_patient):
            slide = f"pt{p}_s{s}"
            with TFRecordWriter(tfrecords / f"{slide}.tfrecords") as writer:
                for t in range(tiles_per_slide):
                    writer.write(
                        {
                            "image_raw": encode(tile_image(label, rng)),
                            "slide": slide,
                            "loc_x": 32 * t + 16,
                            "loc_y": 16,
                        }
                    )
            rows.append(
                {
                    "patient": f"pt{p}",
                    "slide": slide,
                    "tissue": ["stroma", "tumour"][label],
                    "score": -1.0 + 2.0 * label,
                    "time": 20.0 - 10.0 * label + p,
                    "event": int(p % 4 != 3),
                    "marker": -1.0 + 2.0 * label + 0.05 * p,
                    "site": ["A", "B", "C"][p % 3],
                }
            )
    pd.DataFrame(rows).to_csv(root / "annotations.csv", index=False)
    return Dataset(root / "annotations.csv", tfrecords, tile_px=TILE_PX, tile_um=64)


def split(dataset: Dataset) -> tuple[Dataset, Dataset]:
    """Patients 0–5 for training, the rest for validation (both classes on each side)."""
    patients = dataset.patients()
    train = [s for s, p in patients.items() if int(p[2:]) < 6]
    val = [s for s, p in patients.items() if int(p[2:]) >= 6]
    return dataset.with_slides(train), dataset.with_slides(val)
