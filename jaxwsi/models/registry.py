"""One registry of model factories by name, for every kind of model jaxwsi trains.

Kinds: ``"tile"`` (backbones: images → pooled features), ``"segmentation"`` (U-Nets),
``"mil"`` (bags of features → slide outputs) and ``"extractor"`` (feature extractors for MIL).
A factory is any callable returning an ``nnx.Module``; what keywords it takes is fixed per kind
by the code that builds models of that kind (`jaxwsi.models.build_tile_model`, the segmentation
and MIL trainers). Registering a name makes it trainable by name everywhere::

    @jaxwsi.models.register("my_cnn")
    def my_cnn(*, rngs, **options): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, get_args

ModelKind = Literal["tile", "segmentation", "mil", "extractor"]
KINDS: tuple[str, ...] = get_args(ModelKind)

Factory = TypeVar("Factory", bound=Callable[..., Any])

_REGISTRY: dict[str, dict[str, Callable[..., Any]]] = {kind: {} for kind in KINDS}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; kinds are {', '.join(KINDS)}")


def register(name: str, *, kind: ModelKind = "tile") -> Callable[[Factory], Factory]:
    """Decorator: register ``factory`` under ``name`` for models of ``kind``.

    Registering a name again replaces the earlier factory (so a notebook cell can be re-run).
    """
    _check_kind(kind)
    if not isinstance(name, str) or not name:
        raise ValueError(f"a model name must be a non-empty string, got {name!r}")

    def decorate(factory: Factory) -> Factory:
        if not callable(factory):
            raise TypeError(f"register({name!r}) needs a callable, got {type(factory).__name__}")
        _REGISTRY[kind][name] = factory
        return factory

    return decorate


def get(name: str, kind: ModelKind = "tile") -> Callable[..., Any]:
    """The factory registered as ``name`` for ``kind``; the error lists the registered names."""
    _check_kind(kind)
    _load_builtin()
    try:
        return _REGISTRY[kind][name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY[kind])) or "none"
        raise KeyError(
            f"no {kind} model named {name!r}; registered {kind} models: {known} "
            "(register your own with jaxwsi.models.register(name, kind=...))"
        ) from None


def names(kind: ModelKind | None = None) -> list[str]:
    """Registered names of ``kind`` (all kinds when None), sorted."""
    _load_builtin()
    if kind is not None:
        _check_kind(kind)
        return sorted(_REGISTRY[kind])
    return sorted({name for table in _REGISTRY.values() for name in table})


# Modules whose import registers the built-in models (added as the model families land).
BUILTIN_MODULES: list[str] = [
    "jaxwsi.models.efficientnet",
    "jaxwsi.models.mobilenet",
    "jaxwsi.models.resnet",
    "jaxwsi.models.vit",
    "jaxwsi.models.xception",
    "jaxwsi.mil.models",
    "jaxwsi.segment.models",
]


def _load_builtin() -> None:
    """Import the built-in model modules once, so their names are registered before lookup."""
    import importlib

    for module in BUILTIN_MODULES:
        importlib.import_module(module)
