"""Tile geometry: which pyramid level to read, how many pixels a tile spans, and the tile grid.

Two ways to size a tile, as in Slideflow:

* ``tile_um`` as a number of microns: read at the level whose downsample is the largest not
  exceeding the needed one, then resize the ``extract_px`` pixels read to ``tile_px``.

  Which level (``level_rule``): by default (``"direct"``) a level whose downsample *equals* the
  needed one (within 1%: pyramids store 4.016 for 4) is read directly, with no resize: that is
  faster (a quarter of the pixels at 2×) and sharper (no resampling; the scanner's or pyramid
  builder's own downsampling is used). Slideflow picks the coarsest level strictly *below* the
  needed downsample, so at an exact match it reads the next finer level and resizes; its tiles
  cover the same place (same locations) but their pixels differ by a few grey levels.
  ``level_rule="slideflow"`` uses Slideflow's rule, to reproduce its tiles (up to the resize
  kernel: PIL's Lanczos here, libvips' in Slideflow).
* ``tile_um`` as a magnification string (``"10x"``, ``"2.5x"``; 10x = 1 µm/px): read at the level
  whose magnification is closest (error if none is within 2×). Unlike Slideflow, the tile always
  covers exactly ``tile_px · 10 / mag`` µm (resized when the level's magnification differs), so
  ``"10x"`` means the same physical size on every slide.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jaxwsi.slide.errors import SlideError

_MAGNIFICATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[xX]\s*$")
_LEVEL_TOLERANCE = 0.01  # downsamples like 4.016 still count as 4
LEVEL_RULES = ("direct", "slideflow")


@dataclass(frozen=True)
class TileGeometry:
    """How one tile maps onto the slide pyramid."""

    level: int  # pyramid level read
    downsample: float  # that level's downsample from level 0
    extract_px: int  # tile side in pixels at `level` (resized to tile_px afterwards)
    stride_px: int  # grid step at `level`
    full_extract_px: int  # tile side in level-0 pixels
    tile_um: float  # microns the tile covers


def parse_magnification(tile_um: int | float | str) -> float | None:
    """The magnification in ``"10x"``-style strings, or None when ``tile_um`` is a micron size."""
    if isinstance(tile_um, str):
        match = _MAGNIFICATION.match(tile_um)
        if match is None or float(match.group(1)) <= 0:
            raise ValueError(f"tile_um string must look like '10x' or '2.5x', got {tile_um!r}")
        return float(match.group(1))
    if isinstance(tile_um, bool) or not isinstance(tile_um, int | float) or tile_um <= 0:
        raise ValueError(f"tile_um must be a positive number of µm or e.g. '10x', got {tile_um!r}")
    return None


def parse_tile_um(text: str) -> int | float | str:
    """A tile size as typed on a command line: ``"302"`` → 302, ``"302.5"`` → 302.5, ``"10x"``
    stays a magnification; anything else (``"-4"``, ``"abc"``) is a ValueError saying what is
    expected."""
    text = text.strip()
    if _MAGNIFICATION.match(text):
        parse_magnification(text)
        return text.lower().replace(" ", "")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"tile_um must be a positive number of µm (e.g. 302 or 302.5) or a magnification "
            f"(e.g. '10x'), got {text!r}"
        )
    return int(value) if value.is_integer() and "." not in text else value


def tile_size_label(tile_px: int, tile_um: int | float | str) -> str:
    """Folder label for a tile size: ``299px_302um`` or ``299px_10x`` (Slideflow's convention)."""
    magnification = parse_magnification(tile_um)
    if magnification is not None:
        return f"{tile_px}px_{magnification:g}x"
    return f"{tile_px}px_{tile_um:g}um"


def check_level_rule(level_rule: str) -> str:
    """The rule's name; unknown names are an error."""
    if level_rule not in LEVEL_RULES:
        raise ValueError(f"level_rule must be one of {LEVEL_RULES}, got {level_rule!r}")
    return level_rule


def level_for_downsample(
    downsamples: Sequence[float], target: float, level_rule: str = "direct"
) -> int:
    """The pyramid level to read for a wanted downsample: the coarsest level at or below it
    (``"direct"``, 1% tolerance) or strictly below it (``"slideflow"``); level 0 if none."""
    check_level_rule(level_rule)
    if level_rule == "direct":
        below = [i for i, d in enumerate(downsamples) if d <= target * (1 + _LEVEL_TOLERANCE)]
    else:
        below = [i for i, d in enumerate(downsamples) if d < target]
    return max(below, key=lambda i: downsamples[i], default=0)


def tile_geometry(
    tile_px: int,
    tile_um: int | float | str,
    mpp: float,
    downsamples: Sequence[float],
    stride_div: int = 1,
    *,
    level_rule: str = "direct",
    slide_name: str = "slide",
) -> TileGeometry:
    """Choose the pyramid level and pixel sizes for tiles of ``tile_px`` covering ``tile_um``
    (``level_rule``: see the module docstring)."""
    if tile_px < 1:
        raise ValueError(f"tile_px must be positive, got {tile_px}")
    if stride_div < 1:
        raise ValueError(f"stride_div must be a positive integer, got {stride_div}")
    magnification = parse_magnification(tile_um)
    if magnification is None:
        target = float(tile_um) / mpp / tile_px  # downsample that makes one tile pixel
        if level_rule == "slideflow":  # its level-0 tile side is truncated to whole pixels
            target = int(float(tile_um) / mpp) / tile_px
        level = level_for_downsample(downsamples, target, level_rule)
        microns = float(tile_um)
    else:
        target = 10.0 / magnification / mpp
        level = min(range(len(downsamples)), key=lambda i: abs(math.log(downsamples[i] / target)))
        if abs(math.log(downsamples[level] / target)) > math.log(2) + 1e-9:
            found = ", ".join(f"{10 / (d * mpp):.3g}x" for d in downsamples)
            raise SlideError(
                f"{slide_name}: no pyramid level within 2x of {magnification:g}x "
                f"(levels are {found} at {mpp:g} µm/px)"
            )
        microns = tile_px * 10.0 / magnification
    downsample = float(downsamples[level])
    extract_px = max(1, round(microns / mpp / downsample))
    return TileGeometry(
        level=level,
        downsample=downsample,
        extract_px=extract_px,
        stride_px=max(1, round(extract_px / stride_div)),
        full_extract_px=round(extract_px * downsample),
        tile_um=microns,
    )


def slideflow_filter_crop(
    downsamples: Sequence[float], level: int, extract_px: int
) -> tuple[int, int]:
    """(level, side in that level's pixels) of the crop Slideflow judges a tile's white and gray
    fractions on: the coarsest level whose downsample is below ``extract_px`` (the tile's side at
    its read ``level``), the tile's side shrunk by the whole ratio between the two levels; the
    tile itself at ``level`` when that ratio is under 2 (``slideflow/slide/wsi.py``,
    ``extract_tiles``; ``backends/vips.py``, ``tile_worker``)."""
    coarser = [i for i, d in enumerate(downsamples) if d < extract_px]
    filter_level = max(coarser, key=lambda i: downsamples[i], default=level)
    ratio = int(downsamples[filter_level] // downsamples[level])
    if ratio > 1:
        return filter_level, max(1, extract_px // ratio)
    return level, extract_px


def grid_positions(
    level_size: tuple[int, int], extract_px: int, stride_px: int, use_edge_tiles: bool
) -> np.ndarray:
    """Top-left corners (x, y) at the read level, int64 [N, 2], row-major.

    Without ``use_edge_tiles`` only tiles that fit wholly inside the level are kept; with it every
    tile whose corner lies inside is kept (the part outside is padded white when read).
    """
    width, height = level_size

    def starts(size: int) -> np.ndarray:
        last = size - 1 if use_edge_tiles else size - extract_px
        return np.arange(0, last + 1, stride_px, dtype=np.int64) if last >= 0 else np.zeros(0, int)

    xs, ys = starts(width), starts(height)
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([grid_x.ravel(), grid_y.ravel()], axis=1).astype(np.int64)
