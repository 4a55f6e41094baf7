"""Checks that an input is an RGB uint8 image or batch, with errors that say what is wrong."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_image_batch(images: Any, name: str = "image") -> tuple[np.ndarray, bool]:
    """Return ``(batch [B, H, W, 3] uint8, was_single)`` for an RGB uint8 image or batch of images.

    Raises TypeError for a non-array or a dtype other than uint8 and ValueError for a wrong rank,
    channel count or an empty image, naming ``name`` and the offending shape or dtype.
    """
    if not isinstance(images, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise TypeError(f"{name} must have dtype uint8 (RGB 0..255), got {images.dtype}")
    if images.ndim not in (3, 4):
        raise ValueError(
            f"{name} must be [H, W, 3] or [B, H, W, 3], got shape {images.shape} ({images.ndim}-D)"
        )
    if images.shape[-1] != 3:
        raise ValueError(
            f"{name} must have 3 RGB channels last, got {images.shape[-1]} in shape {images.shape}"
        )
    if 0 in images.shape:
        raise ValueError(f"{name} is empty: shape {images.shape}")
    single = images.ndim == 3
    return (images[None] if single else images), single


def restore_rank(batch: np.ndarray, single: bool) -> np.ndarray:
    """Undo the batch dimension :func:`as_image_batch` added to a single image."""
    return batch[0] if single else batch
