"""Errors raised for bad annotations, datasets and splits; each names the rows, slides or file.

They are `jaxwsi.errors.JaxwsiError` (the `jaxwsi` command prints them as one line) and
``ValueError`` (as they always were).
"""

from __future__ import annotations

from jaxwsi.errors import JaxwsiError


class AnnotationError(JaxwsiError, ValueError):
    """The annotations table is unusable: a missing column, a duplicate or blank slide, etc."""


class DatasetError(JaxwsiError, ValueError):
    """A dataset operation cannot be done on these slides: conflicting or blank labels, etc."""


class SplitError(JaxwsiError, ValueError):
    """A train/validation split cannot be made, or a saved one is inconsistent."""
