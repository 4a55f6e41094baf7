"""Datasets, Grain pipelines and preprocessing (augmentation, stain normalization)."""

from jaxwsi.data.augment import augment_images, parse_augment
from jaxwsi.data.dataset import Dataset
from jaxwsi.data.errors import AnnotationError, DatasetError, SplitError
from jaxwsi.data.pipeline import InterleavedDataset, interleaved_dataset
from jaxwsi.data.preprocess import Preprocessor, preprocess, preprocess_images
from jaxwsi.data.standardize import standardize

__all__: list[str] = ["AnnotationError", "Dataset", "DatasetError", "SplitError"]
__all__ += ["InterleavedDataset", "interleaved_dataset"]
__all__ += [
    "Preprocessor",
    "augment_images",
    "parse_augment",
    "preprocess",
    "preprocess_images",
    "standardize",
]
