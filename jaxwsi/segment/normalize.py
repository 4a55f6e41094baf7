"""Intensity normalization of raw images, per image and channel (EPySeg's options).

First outliers are clipped (EPySeg's "remove outliers" is clipping): values above the
``1 − clip_fraction`` quantile and/or below the ``clip_fraction`` quantile; then the values are
rescaled by the method. The `NormalizationConfig` is saved with the model, so prediction
normalizes exactly as training did.
"""

from __future__ import annotations

import numpy as np

from jaxwsi.segment.config import NormalizationConfig

EPS = 1e-20  # EPySeg's


def normalize(image: np.ndarray, config: NormalizationConfig) -> np.ndarray:
    """``image`` (*spatial, C) → float32 of the same shape, each channel on its own."""
    x = np.asarray(image, np.float32)
    axes = tuple(range(x.ndim - 1))
    f = config.clip_fraction
    if config.clip != "none" and f > 0:
        lo, hi = np.quantile(x, [f, 1.0 - f], axis=axes, keepdims=True)
        x = np.clip(
            x,
            lo if config.clip in ("both", "low") else None,
            hi if config.clip in ("both", "high") else None,
        )
    if config.method == "minmax":
        lo, hi = x.min(axes, keepdims=True), x.max(axes, keepdims=True)
        x = (x - lo) / np.maximum(hi - lo, EPS)
    elif config.method == "max":
        x = x / np.maximum(np.abs(x).max(axes, keepdims=True), EPS)
    elif config.method == "standard":
        x = (x - x.mean(axes, keepdims=True)) / np.maximum(x.std(axes, keepdims=True), EPS)
    elif config.method == "percentile":
        lo, hi = np.percentile(x, config.percentiles, axis=axes, keepdims=True)
        x = (x - lo) / np.maximum(hi - lo, EPS)
    return x.astype(np.float32)
