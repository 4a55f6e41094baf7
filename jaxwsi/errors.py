"""The base of every error jaxwsi raises for bad user input (files, annotations, arguments).

Each package's errors (`jaxwsi.dataset.AnnotationError`, `jaxwsi.slide.SlideError`, ...) derive
from `JaxwsiError` as well as from the builtin they have always been (``ValueError``,
``RuntimeError``), so ``except ValueError`` keeps working and the `jaxwsi` command can print one
line for any of them instead of a traceback. Messages name the file, row or field at fault.
"""

from __future__ import annotations

__all__ = ["JaxwsiError"]


class JaxwsiError(Exception):
    """Bad input the user can fix: the message says what and where."""
