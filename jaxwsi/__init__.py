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

import importlib
from typing import TYPE_CHECKING, Any

from jaxwsi._native import __version__

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

# Sub-packages reachable as attributes of `jaxwsi` without importing them first.
_SUBPACKAGES = frozenset(
    {
        "dataset",
        "experiment",
        "io",
        "mil",
        "models",
        "norm",
        "pipeline",
        "segment",
        "slide",
        "testing",
        "train",
        "util",
    }
)

__all__ = [
    "Dataset",
    "JaxwsiError",
    "ModelParams",
    "Project",
    "__version__",
    "create_project",
    "load_project",
]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"jaxwsi.{name}")  # binds itself in globals()
    if name not in _LAZY:
        raise AttributeError(f"module 'jaxwsi' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
