"""The pixels: loader batches → Grain `IterDataset`s with crop/resize, stain normalization,
augmentation and standardization (numpy and JAX)."""

from jaxwsi.pipeline.augment import augment_images, parse_augment
from jaxwsi.pipeline.grain_source import InterleavedDataset, interleaved_dataset
from jaxwsi.pipeline.preprocess import Preprocessor, preprocess, preprocess_images
from jaxwsi.pipeline.standardize import standardize

__all__ = [
    "InterleavedDataset",
    "Preprocessor",
    "augment_images",
    "interleaved_dataset",
    "parse_augment",
    "preprocess",
    "preprocess_images",
    "standardize",
]
