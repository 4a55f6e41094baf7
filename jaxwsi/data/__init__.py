"""Datasets, Grain pipelines and preprocessing (augmentation, stain normalization)."""

from jaxwsi.data.dataset import Dataset
from jaxwsi.data.errors import AnnotationError, DatasetError, SplitError

__all__: list[str] = ["AnnotationError", "Dataset", "DatasetError", "SplitError"]
