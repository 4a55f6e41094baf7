"""Shared by the experiment tests: a tiny registered CNN (``tiny_cnn``; trial processes import
this module to have it), a small synthetic two-class project with extracted tiles, and the
hyperparameters of a short run on it (``HP``, ``QUIET``)."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import pandas as pd
from flax import nnx

import jaxwsi
from jaxwsi.testing import synthetic_slide

TILE_PX = 32
TILE_UM = 64
OUTCOME = "tissue"

# Hyperparameters of a two-epoch tiny_cnn run on the project, and Project.train's keyword that
# silences the progress bar.
HP = dict(
    tile_px=TILE_PX,
    tile_um=TILE_UM,
    model="tiny_cnn",
    epochs=[2],
    batch_size=16,
    learning_rate=3e-3,
    augment=None,
    pooling="avg",
)
QUIET = {"trainer_options": {"progress": False}}


class TinyCNN(nnx.Module):
    """Two strided convolutions and global average pooling: 16 features, fast on a CPU."""

    def __init__(self, *, rngs, dtype=jnp.float32, param_dtype=jnp.float32, **_):
        self.conv1 = nnx.Conv(
            3, 8, (3, 3), strides=2, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        self.conv2 = nnx.Conv(
            8, 16, (3, 3), strides=2, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        self.dtype = dtype
        self.num_features = 16
        self.block_paths = (("conv1",), ("conv2",))

    def __call__(self, x):
        x = nnx.relu(self.conv1(x.astype(self.dtype)))
        return nnx.relu(self.conv2(x)).mean(axis=(1, 2))


if "tiny_cnn" not in jaxwsi.models.names("tile"):
    jaxwsi.models.register("tiny_cnn")(lambda **kwargs: TinyCNN(**kwargs))


def make_project(
    root: Path, *, num_patients: int = 6, slides_per_patient: int = 2, continuous: bool = True
) -> jaxwsi.Project:
    """``num_patients`` patients (alternating classes) of synthetic slides; annotation columns
    ``tissue`` (stroma/tumour), ``score`` (continuous, class-dependent), ``time``/``event``
    (survival, shorter for tumour); tiles extracted at TILE_PX/TILE_UM with Otsu QC."""
    slides = root / "slides"
    slides.mkdir(parents=True)
    rows = []
    for p in range(num_patients):
        tissue_class = p % 2
        for s in range(slides_per_patient):
            name = f"p{p}_s{s}"
            synthetic_slide(
                slides / f"{name}.tiff",
                width=768,
                height=512,
                tissue_class=tissue_class,
                seed=10 * p + s,
            )
            rows.append(
                {
                    "patient": f"p{p}",
                    "slide": name,
                    OUTCOME: ["stroma", "tumour"][tissue_class],
                    "score": float(tissue_class) + 0.1 * p,
                    "time": 10.0 - 5 * tissue_class + p,
                    "event": int(p % 3 != 2),
                }
            )
    project = jaxwsi.create_project(root / "project", annotations=pd.DataFrame(rows), slides=slides)
    project.extract_tiles(TILE_PX, TILE_UM, qc="otsu", num_workers=0, progress=False)
    return project
