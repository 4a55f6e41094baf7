"""The cohort: annotations, filters, labels, patient-level splits, balance weights and clips.

Pandas only; nothing here imports JAX or Grain, so segmentation, MIL and the CLI can use it
without paying for them. The pixel side (Grain sources, preprocessing) is `jaxwsi.pipeline`.
"""

from jaxwsi.dataset.dataset import Dataset
from jaxwsi.dataset.errors import AnnotationError, DatasetError, SplitError

__all__ = ["AnnotationError", "Dataset", "DatasetError", "SplitError"]
