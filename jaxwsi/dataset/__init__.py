"""The cohort: annotations, filters, labels, patient-level splits, balance weights and clips.

Pandas only; nothing here imports JAX or Grain, so segmentation, MIL and the CLI can use it
without paying for them. The pixel side (Grain sources, preprocessing) is `jaxwsi.pipeline`.
Names are imported on first use, so ``jaxwsi.dataset.splits`` or ``.errors`` load no pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jaxwsi.lazy import lazy_names

if TYPE_CHECKING:
    from jaxwsi.dataset.dataset import Dataset
    from jaxwsi.dataset.errors import AnnotationError, DatasetError, SplitError

_LAZY = {
    "AnnotationError": ".errors",
    "Dataset": ".dataset",
    "DatasetError": ".errors",
    "SplitError": ".errors",
}

__all__ = ["AnnotationError", "Dataset", "DatasetError", "SplitError"]

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
