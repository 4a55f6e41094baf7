"""Errors raised for bad annotations, datasets and splits; each names the rows, slides or file."""

from __future__ import annotations


class AnnotationError(ValueError):
    """The annotations table is unusable: a missing column, a duplicate or blank slide, etc."""


class DatasetError(ValueError):
    """A dataset operation cannot be done on these slides: conflicting or blank labels, etc."""


class SplitError(ValueError):
    """A train/validation split cannot be made, or a saved one is inconsistent."""
