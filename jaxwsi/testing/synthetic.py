"""Synthetic whole-slide images: pyramidal tiled TIFFs that OpenSlide opens as ``generic-tiff``.

Each slide shows blobs of tissue on a white background. The tissue texture depends on
``tissue_class`` (stain colours, nucleus size and density, fibre stripes), so a classifier trained
on tiles from slides of different classes has something real to learn. Everything is seeded.
The slide is rendered one strip of tile rows at a time, so slides larger than memory allow work.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from scipy import ndimage

from jaxwsi.atomic import atomic_path

_TILE = 256
_CELL = 16  # nucleus grid cell in level-0 pixels; divides _TILE so strips join seamlessly


@dataclass(frozen=True)
class _Texture:
    """How one tissue class looks: background stain, nuclei and fibres."""

    stroma_rgb: tuple[int, int, int]
    nucleus_rgb: tuple[int, int, int]
    nucleus_density: float  # fraction of grid cells holding a nucleus
    nucleus_radius: tuple[float, float]  # min, max radius in pixels
    fibre_period: float  # stripe period in pixels (0 = no fibres)


_TEXTURES = (
    _Texture((235, 170, 200), (120, 60, 150), 0.15, (2.5, 4.0), 24.0),  # fibrous stroma
    _Texture((220, 150, 190), (70, 30, 120), 0.75, (4.5, 7.0), 0.0),  # dense tumour
    _Texture((225, 165, 205), (40, 20, 90), 0.85, (2.5, 3.5), 0.0),  # lymphocytes
    _Texture((240, 190, 215), (150, 90, 170), 0.35, (3.0, 5.0), 48.0),  # loose tissue
)

NUM_TISSUE_CLASSES = len(_TEXTURES)


def synthetic_slide(
    path: str | Path,
    *,
    width: int = 2048,
    height: int = 1536,
    mpp: float | None = 0.5,
    tissue_class: int = 0,
    tissue_fraction: float = 0.5,
    num_levels: int | None = None,
    seed: int = 0,
    jpeg_quality: int = 90,
) -> Path:
    """Write a seeded pyramidal tiled JPEG TIFF of ``width`` × ``height`` pixels at ``mpp`` µm/px.

    ``mpp=None`` writes no resolution tags (a slide without MPP, for error paths).
    Level ``k`` is level 0 downsampled by ``2**k``; by default levels are added until the
    smallest side is below 512 px. ``tissue_fraction`` is roughly the share of the slide covered
    by tissue. The file is written to a temporary name and renamed, so it is never half-written.
    Returns the path.
    """
    if not 0 <= tissue_class < NUM_TISSUE_CLASSES:
        raise ValueError(f"tissue_class must be in [0, {NUM_TISSUE_CLASSES}), got {tissue_class}")
    if width < _TILE or height < _TILE:
        raise ValueError(f"slide must be at least {_TILE}x{_TILE} px, got {width}x{height}")
    if mpp is not None and mpp <= 0:
        raise ValueError(f"mpp must be positive, got {mpp}")
    path = Path(path)
    if num_levels is None:
        num_levels = 1
        while min(width, height) >> num_levels >= 512:
            num_levels += 1
    rng = np.random.default_rng([seed, tissue_class])
    renderer = _Renderer(width, height, _TEXTURES[tissue_class], tissue_fraction, rng)

    level1 = np.zeros((height // 2, width // 2, 3), np.uint8) if num_levels > 1 else None
    with (
        atomic_path(path, suffix=path.suffix) as tmp,
        tifffile.TiffWriter(tmp, bigtiff=width * height * 3 > 2**31) as tif,
    ):
        tif.write(
            renderer.tiles(level1),
            shape=(height, width, 3),
            dtype=np.uint8,
            **_page_options(mpp, jpeg_quality),
        )
        level = level1
        for k in range(1, num_levels):
            assert level is not None
            tif.write(
                _pad_to_tiles(level),
                shape=level.shape,
                dtype=np.uint8,
                subfiletype=1,
                **_page_options(None if mpp is None else mpp * 2**k, jpeg_quality),
            )
            level = _halve(level)
    return path


def _page_options(mpp: float | None, jpeg_quality: int) -> dict[str, Any]:
    options: dict[str, Any] = {
        "tile": (_TILE, _TILE),
        "photometric": "rgb",
        "compression": "jpeg",
        "compressionargs": {"level": jpeg_quality},
        "metadata": None,
    }
    if mpp is not None:
        options |= {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"}
    return options


def _halve(image: np.ndarray) -> np.ndarray:
    """2× box downsample (odd trailing row/column dropped)."""
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    blocks = image[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).astype(np.uint16)
    return (blocks.sum(axis=(1, 3)) // 4).astype(np.uint8)


def _pad_to_tiles(image: np.ndarray) -> Iterator[np.ndarray]:
    """Yield the image's tiles in row-major order, edge tiles padded with white."""
    h, w = image.shape[:2]
    for y in range(0, h, _TILE):
        for x in range(0, w, _TILE):
            tile = np.full((_TILE, _TILE, 3), 255, np.uint8)
            part = image[y : y + _TILE, x : x + _TILE]
            tile[: part.shape[0], : part.shape[1]] = part
            yield tile


class _Renderer:
    """Renders level 0 strip by strip from per-slide random fields fixed at construction."""

    def __init__(
        self,
        width: int,
        height: int,
        texture: _Texture,
        tissue_fraction: float,
        rng: np.random.Generator,
    ) -> None:
        self.width, self.height, self.texture = width, height, texture
        self.rng = rng
        # Tissue outline: smoothed noise on a coarse grid (one value per 32 px), thresholded at
        # the quantile that covers `tissue_fraction` of the slide.
        coarse = ndimage.gaussian_filter(
            rng.standard_normal((-(-height // 32), -(-width // 32))), sigma=6, mode="reflect"
        )
        cut = np.quantile(coarse, 1.0 - tissue_fraction) if tissue_fraction > 0 else np.inf
        self.coarse_tissue = coarse > cut
        cells = (-(-height // _CELL), -(-width // _CELL))
        lo, hi = texture.nucleus_radius
        self.has_nucleus = rng.random(cells) < texture.nucleus_density
        self.radius = rng.uniform(lo, hi, cells).astype(np.float32)
        self.centre_y = rng.uniform(lo, _CELL - lo, cells).astype(np.float32)
        self.centre_x = rng.uniform(lo, _CELL - lo, cells).astype(np.float32)
        self.fibre_angle = rng.uniform(0, np.pi)

    def tiles(self, level1: np.ndarray | None) -> Iterator[np.ndarray]:
        """Yield level-0 tiles row-major; also fill ``level1`` (the 2× downsample) if given."""
        for y0 in range(0, self.height, _TILE):
            strip = self.render_strip(y0)
            if level1 is not None:
                half = _halve(strip[: min(_TILE, self.height - y0)])
                level1[y0 // 2 : y0 // 2 + half.shape[0]] = half[:, : level1.shape[1]]
            for x0 in range(0, self.width, _TILE):
                yield strip[:, x0 : x0 + _TILE]

    def render_strip(self, y0: int) -> np.ndarray:
        """RGB pixels of rows ``y0 .. y0+256`` padded to whole tiles (white outside the slide)."""
        w = -(-self.width // _TILE) * _TILE
        ys = np.arange(y0, y0 + _TILE)[:, None]
        xs = np.arange(w)[None, :]
        t = self.texture
        cy = np.minimum(ys // _CELL, self.has_nucleus.shape[0] - 1)
        cx = np.minimum(xs // _CELL, self.has_nucleus.shape[1] - 1)
        dy = ys % _CELL - self.centre_y[cy, cx]
        dx = xs % _CELL - self.centre_x[cy, cx]
        nucleus = self.has_nucleus[cy, cx] & (dy * dy + dx * dx < self.radius[cy, cx] ** 2)

        image = np.empty((_TILE, w, 3), np.float32)
        image[:] = t.stroma_rgb
        if t.fibre_period:
            phase = xs * np.cos(self.fibre_angle) + ys * np.sin(self.fibre_angle)
            stripe = 0.5 + 0.5 * np.sin(2 * np.pi * phase / t.fibre_period)
            image -= (18.0 * stripe)[..., None]
        image[nucleus] = t.nucleus_rgb
        image += self.rng.normal(0.0, 6.0, (_TILE, w, 1)).astype(np.float32)

        tissue = self._tissue_mask(ys[:, 0], w)
        image[~tissue] = 255.0
        image[ys[:, 0] >= self.height] = 255.0
        image[:, self.width :] = 255.0
        return np.clip(image, 0, 255).astype(np.uint8)

    def _tissue_mask(self, ys: np.ndarray, w: int) -> np.ndarray:
        """Tissue outline for the strip rows, bilinearly upsampled from the coarse grid."""
        coarse = self.coarse_tissue.astype(np.float32)
        gy = np.clip((ys + 0.5) / 32 - 0.5, 0, coarse.shape[0] - 1)
        gx = np.clip((np.arange(w) + 0.5) / 32 - 0.5, 0, coarse.shape[1] - 1)
        y0, x0 = np.floor(gy).astype(int), np.floor(gx).astype(int)
        y1 = np.minimum(y0 + 1, coarse.shape[0] - 1)
        x1 = np.minimum(x0 + 1, coarse.shape[1] - 1)
        fy, fx = (gy - y0)[:, None], (gx - x0)[None, :]
        top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x1] * fx
        bottom = coarse[y1][:, x0] * (1 - fx) + coarse[y1][:, x1] * fx
        return (top * (1 - fy) + bottom * fy) > 0.5
