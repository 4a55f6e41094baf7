"""Pixel filters (whitespace, grayspace) and the fraction of a mask under each tile's footprint.

Where the pixels come from (``filter_rule`` of ``WSI.select_tiles``):

* ``"thumbnail"`` (default): one downsampled image of the whole slide (``WSI.thumbnail``, 16 to
  64 pixels per tile side), so background tiles are rejected before any full-resolution pixels
  are read, at the same resolution on every slide whatever its pyramid.
* ``"slideflow"``: Slideflow's rule, to reproduce its tile selection: each tile is judged on a
  crop of the coarsest pyramid level whose downsample is below the tile's extraction size
  (`jaxwsi.slide.grid.slideflow_filter_crop`; 6×6 pixels on boxes.tiff), with libvips' 8-bit
  HSV saturation (``trunc(255·(max−min)/max) < 255·threshold``). Its resolution depends on the
  slide's pyramid: tiles near the threshold can flip between the two rules.
"""

from __future__ import annotations

import numpy as np

WHITESPACE_THRESHOLD = 230  # a pixel is white when its mean RGB exceeds this
GRAYSPACE_THRESHOLD = 0.05  # a pixel is gray when its HSV saturation is below this
FILTER_RULES = ("thumbnail", "slideflow")


def check_filter_rule(filter_rule: str) -> str:
    """The rule's name; unknown names are an error."""
    if filter_rule not in FILTER_RULES:
        raise ValueError(f"filter_rule must be one of {FILTER_RULES}, got {filter_rule!r}")
    return filter_rule


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation in [0, 1] of an RGB uint8 image: (max - min) / max, 0 where max is 0."""
    high = rgb.max(axis=-1).astype(np.float32)
    low = rgb.min(axis=-1).astype(np.float32)
    return np.divide(high - low, high, out=np.zeros_like(high), where=high > 0)


def white_mask(rgb: np.ndarray, threshold: float = WHITESPACE_THRESHOLD) -> np.ndarray:
    """True where a pixel's mean RGB is above ``threshold`` (background glass)."""
    return rgb.astype(np.float32).mean(axis=-1) > threshold


def saturation_uint8(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation as libvips' ``sRGB2HSV`` gives it: ``trunc(255·(max−min)/max)`` in float32,
    0 where max is 0 (uint8)."""
    high = rgb.max(axis=-1).astype(np.float32)
    delta = high - rgb.min(axis=-1).astype(np.float32)
    scaled = np.divide(delta * np.float32(255), high, out=np.zeros_like(high), where=high > 0)
    return scaled.astype(np.uint8)


def gray_mask(
    rgb: np.ndarray, threshold: float = GRAYSPACE_THRESHOLD, *, uint8_saturation: bool = False
) -> np.ndarray:
    """True where a pixel's HSV saturation is below ``threshold`` (unstained or gray); with
    ``uint8_saturation`` the saturation is libvips' 8-bit one (Slideflow's rule)."""
    if uint8_saturation:
        return saturation_uint8(rgb) < threshold * 255
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
    corners = np.asarray(corners, np.float64).reshape(-1, 2)
    origins = np.round(corners / downsample).astype(np.int64)
    return window_fractions(mask, origins, max(1, round(footprint / downsample)), outside)


def window_fractions(
    mask: np.ndarray, origins: np.ndarray, side: int, outside: float = 1.0
) -> np.ndarray:
    """Mean of ``mask`` over ``side``² windows with top-left corners ``origins`` [N, 2] (x, y,
    in mask pixels), float64 [N]; parts beyond the mask count as ``outside``."""
    height, width = mask.shape
    table = np.zeros((height + 1, width + 1), np.float64)
    np.cumsum(np.cumsum(mask, axis=0, dtype=np.float64), axis=1, out=table[1:, 1:])
    origins = np.asarray(origins, np.int64).reshape(-1, 2)
    x0, y0 = origins[:, 0], origins[:, 1]
    x1, y1 = x0 + side, y0 + side
    cx0, cx1 = np.clip(x0, 0, width), np.clip(x1, 0, width)
    cy0, cy1 = np.clip(y0, 0, height), np.clip(y1, 0, height)
    inside = table[cy1, cx1] - table[cy0, cx1] - table[cy1, cx0] + table[cy0, cx0]
    area = float(side * side)
    outside_area = area - (cx1 - cx0) * (cy1 - cy0)
    return (inside + outside * outside_area) / area
