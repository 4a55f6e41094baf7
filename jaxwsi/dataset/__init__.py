"""The cohort: annotations, filters, labels, patient-level splits, balance weights and clips.

Pandas only; nothing here imports JAX or Grain, so segmentation, MIL and the CLI can use it
without paying for them. The pixel side (Grain sources, preprocessing) is `jaxwsi.pipeline`.
Names are imported on first use, so ``jaxwsi.dataset.splits`` or ``.errors`` load no pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jaxwsi.dataset.dataset import Dataset
    from jaxwsi.dataset.errors import AnnotationError, DatasetError, SplitError

_LAZY = {
    "AnnotationError": "errors",
    "Dataset": "dataset",
    "DatasetError": "errors",
    "SplitError": "errors",
}

__all__ = ["AnnotationError", "Dataset", "DatasetError", "SplitError"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        # A submodule (jaxwsi.dataset.balance, ...) not imported yet.
        try:
            return importlib.import_module(f"jaxwsi.dataset.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"jaxwsi.dataset.{name}":
                raise
            raise AttributeError(f"module 'jaxwsi.dataset' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"jaxwsi.dataset.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
