"""jaxwsi: whole-slide image and microscopy deep learning on JAX/Flax with a Rust TFRecord core.

The public API is re-exported here; sub-packages follow the data flow:
``io`` (TFRecords, loader) → ``slide`` (WSI → tiles) → ``data`` (datasets, pipelines,
preprocessing) → ``norm`` (stain normalization).

Names are imported on first use (PEP 562), so a spawned tile-extraction worker that imports
``jaxwsi.slide`` does not pay for importing JAX and Grain.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from jaxwsi._native import __version__

if TYPE_CHECKING:
    from jaxwsi.data import Dataset
    from jaxwsi.project import Project, create_project, load_project

# Public name → the module that defines it.
_LAZY = {
    "Dataset": "jaxwsi.data",
    "Project": "jaxwsi.project",
    "create_project": "jaxwsi.project",
    "load_project": "jaxwsi.project",
}

__all__ = ["Dataset", "Project", "__version__", "create_project", "load_project"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'jaxwsi' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
