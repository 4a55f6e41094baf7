"""Pixel filters (whitespace, grayspace) and the fraction of a mask under each tile's footprint.

Filters run on a downsampled image of the whole slide (see ``WSI.thumbnail``), not on each tile,
so background tiles are rejected before any full-resolution pixels are read.
"""

from __future__ import annotations

import numpy as np

WHITESPACE_THRESHOLD = 230  # a pixel is white when its mean RGB exceeds this
GRAYSPACE_THRESHOLD = 0.05  # a pixel is gray when its HSV saturation is below this


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation in [0, 1] of an RGB uint8 image: (max - min) / max, 0 where max is 0."""
    high = rgb.max(axis=-1).astype(np.float32)
    low = rgb.min(axis=-1).astype(np.float32)
    return np.divide(high - low, high, out=np.zeros_like(high), where=high > 0)


def white_mask(rgb: np.ndarray, threshold: float = WHITESPACE_THRESHOLD) -> np.ndarray:
    """True where a pixel's mean RGB is above ``threshold`` (background glass)."""
    return rgb.astype(np.float32).mean(axis=-1) > threshold


def gray_mask(rgb: np.ndarray, threshold: float = GRAYSPACE_THRESHOLD) -> np.ndarray:
    """True where a pixel's HSV saturation is below ``threshold`` (unstained or gray)."""
    return saturation(rgb) < threshold


def footprint_fractions(
    mask: np.ndarray,
    downsample: float,
    corners: np.ndarray,
    footprint: int,
    outside: float = 1.0,
) -> np.ndarray:
    """Mean of ``mask`` over each tile's footprint, float64 [N].

    ``mask`` covers the slide at ``downsample`` (level-0 px per mask px); ``corners`` are tiles'
    level-0 top-left corners [N, 2] and ``footprint`` their level-0 side. Parts of a footprint
    beyond the mask count as ``outside`` (edge tiles are padded white, so 1.0 for background).
    Uses a summed-area table: O(mask size + N).
    """
    height, width = mask.shape
    table = np.zeros((height + 1, width + 1), np.float64)
    np.cumsum(np.cumsum(mask, axis=0, dtype=np.float64), axis=1, out=table[1:, 1:])
    corners = np.asarray(corners, np.float64).reshape(-1, 2)
    x0 = np.round(corners[:, 0] / downsample).astype(np.int64)
    y0 = np.round(corners[:, 1] / downsample).astype(np.int64)
    side = max(1, round(footprint / downsample))
    x1, y1 = x0 + side, y0 + side
    cx0, cx1 = np.clip(x0, 0, width), np.clip(x1, 0, width)
    cy0, cy1 = np.clip(y0, 0, height), np.clip(y1, 0, height)
    inside = table[cy1, cx1] - table[cy0, cx1] - table[cy1, cx0] + table[cy0, cx0]
    area = float(side * side)
    outside_area = area - (cx1 - cx0) * (cy1 - cy0)
    return (inside + outside * outside_area) / area
