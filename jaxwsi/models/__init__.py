"""Flax NNX architectures and the registry that makes any `nnx.Module` factory trainable by name."""

from jaxwsi.models.registry import KINDS, ModelKind, get, names, register

__all__ = ["KINDS", "ModelKind", "get", "names", "register"]
