"""Pixel standardization: uint8 RGB → float32 model input, in numpy or JAX.

``"scale"`` (the default, Slideflow's PyTorch backend): ``x / 127.5 - 1`` in [-1, 1].
``"per_image"`` (Slideflow's TensorFlow backend, ``tf.image.per_image_standardization``):
``(x - mean) / max(std, 1 / sqrt(N))`` over each image's N = H·W·C values.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

STANDARDIZE_MODES = ("scale", "per_image")


def check_mode(mode: str) -> str:
    """``mode`` if it is a known standardization, else ValueError."""
    if mode not in STANDARDIZE_MODES:
        raise ValueError(f"unknown standardization {mode!r}; choose one of {STANDARDIZE_MODES}")
    return mode


def standardize(images: Any, mode: str = "scale", xp: Any = np) -> Any:
    """Float32 standardized ``images`` (``[..., H, W, C]``; a batch is standardized per image)."""
    values = images.astype(xp.float32)
    if check_mode(mode) == "scale":
        return values / 127.5 - 1.0
    axes = (-3, -2, -1)
    count = values.shape[-3] * values.shape[-2] * values.shape[-1]
    mean = values.mean(axis=axes, keepdims=True)
    std = values.std(axis=axes, keepdims=True)
    return (values - mean) / xp.maximum(std, 1.0 / np.sqrt(count))


@partial(jax.jit, static_argnames="mode")
def standardize_jax(images: jax.Array, mode: str = "scale") -> jax.Array:
    """Jitted JAX :func:`standardize` for a batch on the device."""
    return standardize(images, mode, jnp)
