"""Attention heatmaps: per-tile scores painted at the tile locations, over the slide thumbnail.

Works for every MIL model (each returns per-tile scores). Scores are scaled to [0, 1] per slide
(min–max) and drawn with a matplotlib colormap; each tile covers a square of side ``tile_extent``
level-0 pixels centred on its location (default: the grid spacing of the locations).
"""

from __future__ import annotations

import io
import os

import numpy as np

from jaxwsi.atomic import write_bytes_atomic


def grid_spacing(locations: np.ndarray) -> int:
    """The smallest positive step between tile locations along x or y (1 for a single tile)."""
    steps = [np.diff(np.unique(locations[:, axis])) for axis in (0, 1)]
    positive = np.concatenate([s[s > 0] for s in steps])
    return int(positive.min()) if positive.size else 1


def attention_image(
    locations: np.ndarray,
    attention: np.ndarray,
    *,
    shape: tuple[int, int],
    downsample: float,
    tile_extent: int | None = None,
) -> np.ndarray:
    """float [H, W] scores (NaN where no tile) at the scale of an image of ``shape`` (H, W)
    that is ``downsample`` times smaller than level 0."""
    extent = tile_extent or grid_spacing(locations)
    scores = np.asarray(attention, np.float64)
    span = scores.max() - scores.min()
    scores = (scores - scores.min()) / span if span > 0 else np.ones_like(scores)
    image = np.full(shape, np.nan)
    half = extent / 2
    for (x, y), s in zip(locations, scores, strict=True):
        x0, x1 = int((x - half) / downsample), int(np.ceil((x + half) / downsample))
        y0, y1 = int((y - half) / downsample), int(np.ceil((y + half) / downsample))
        image[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = s
    return image


def save_heatmap(
    path: str | os.PathLike[str],
    locations: np.ndarray,
    attention: np.ndarray,
    *,
    thumbnail: np.ndarray | None = None,
    downsample: float | None = None,
    tile_extent: int | None = None,
    cmap: str = "inferno",
    alpha: float = 0.6,
) -> None:
    """Write a PNG: the heatmap over ``thumbnail`` (RGB, ``downsample`` × smaller than level
    0), or on its own on the tile grid when there is no thumbnail."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import colormaps
    from matplotlib import pyplot as plt

    if thumbnail is None:
        extent = tile_extent or grid_spacing(locations)
        origin = locations.min(axis=0) - extent // 2
        locations = locations - origin
        downsample = float(extent)
        size = np.ceil((locations.max(axis=0) + extent) / downsample).astype(int)
        shape = (int(size[1]), int(size[0]))
    else:
        if downsample is None:
            raise ValueError("a thumbnail needs its downsample")
        shape = thumbnail.shape[:2]
    scores = attention_image(
        locations, attention, shape=shape, downsample=downsample, tile_extent=tile_extent
    )
    colored = colormaps[cmap](np.nan_to_num(scores))[..., :3]
    covered = ~np.isnan(scores)[..., None]
    if thumbnail is None:
        rgb = np.where(covered, colored, 1.0)
    else:
        base = thumbnail[..., :3].astype(np.float64) / 255.0
        rgb = np.where(covered, (1 - alpha) * base + alpha * colored, base)
    buffer = io.BytesIO()
    plt.imsave(buffer, np.clip(rgb, 0, 1), format="png")
    write_bytes_atomic(path, buffer.getvalue())
