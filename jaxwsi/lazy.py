"""Names imported on first use (PEP 562), shared by jaxwsi's packages.

A package lists its public names and the modules that define them; ``import jaxwsi.x`` then
stays cheap (the CLI, spawned extraction workers and settings readers pay for no JAX, Grain or
OpenSlide they do not use), while ``jaxwsi.x.Name`` and ``jaxwsi.x.submodule`` still work::

    __getattr__, __dir__ = lazy_names(__name__, {"Dataset": ".dataset"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``: a name of ``names``
    (public name → defining module, absolute or relative to ``package``) is imported on first
    access and bound in the package; any other name is tried as a submodule."""
    namespace = vars(sys.modules[package])

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            if not name.startswith("__"):
                try:
                    return importlib.import_module(f"{package}.{name}")  # binds itself
                except ModuleNotFoundError as error:
                    if error.name != f"{package}.{name}":
                        raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__
