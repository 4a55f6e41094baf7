"""jaxwsi: whole-slide image and microscopy deep learning on JAX/Flax with a Rust TFRecord core.

The public API is re-exported here; sub-packages follow the data flow:
``slide`` (WSI → tiles) → ``io`` (TFRecords, the native loader) → ``dataset`` (the cohort:
annotations, labels, splits, balance, clip) → ``pipeline`` (Grain, preprocessing) and ``norm``
(stain normalization) → ``models`` / ``train`` (tile models and their trainer), ``segment``
(segmentation), ``mil`` (multiple-instance learning).

Names and sub-packages are imported on first use (PEP 562): ``import jaxwsi`` is cheap, a
spawned tile-extraction worker that imports ``jaxwsi.slide`` does not pay for JAX and Grain, and
``jaxwsi.pipeline.preprocess(...)`` works after a plain ``import jaxwsi``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jaxwsi._native import __version__
from jaxwsi.lazy import lazy_names

if TYPE_CHECKING:
    from jaxwsi.dataset import Dataset
    from jaxwsi.errors import JaxwsiError
    from jaxwsi.project import Project, create_project, load_project
    from jaxwsi.train.params import ModelParams

# Public name → the module that defines it.
_LAZY = {
    "Dataset": "jaxwsi.dataset",
    "JaxwsiError": "jaxwsi.errors",
    "ModelParams": "jaxwsi.train.params",
    "Project": "jaxwsi.project",
    "create_project": "jaxwsi.project",
    "load_project": "jaxwsi.project",
}

__all__ = [
    "Dataset",
    "JaxwsiError",
    "ModelParams",
    "Project",
    "__version__",
    "create_project",
    "load_project",
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
