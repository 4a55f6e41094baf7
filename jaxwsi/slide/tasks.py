"""The work of `extract_tiles` that worker processes do: plan a slide, read and encode its tiles.

Kept apart from `jaxwsi.slide.extract` so a worker imports OpenSlide, NumPy and Pillow but not
pandas or the parent's bookkeeping. Every argument and result pickles.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from jaxwsi.slide.report import draw_thumbnail, save_image
from jaxwsi.slide.settings import ExtractionSettings
from jaxwsi.slide.wsi import WSI


@dataclass(frozen=True)
class SlideJob:
    """One slide to extract: what a worker process needs to open it itself."""

    path: Path
    name: str
    rois: tuple[Path, ...]
    settings: ExtractionSettings
    thumbnail: Path

    def open(self) -> WSI:
        s = self.settings
        return WSI(
            self.path,
            s.tile_px,
            s.tile_um,
            stride_div=s.stride_div,
            mpp=s.mpp,
            rois=list(self.rois),
            roi_method=s.roi_method,
            use_edge_tiles=s.use_edge_tiles,
            level_rule=s.level_rule,
        )


@dataclass
class SlidePlan:
    """What planning found: the tiles to read (grid indices) and facts for the report."""

    indices: np.ndarray
    locations: np.ndarray  # level-0 centres of all grid tiles
    level_rows: np.ndarray  # grid row (level y) of all grid tiles
    mpp: float
    level: int
    num_rois: int


def plan_slide(job: SlideJob) -> SlidePlan:
    """Grid, ROIs, filters and QC for one slide; saves its report thumbnail."""
    s = job.settings
    with job.open() as wsi:
        selection = wsi.select_tiles(
            whitespace_fraction=s.whitespace_fraction,
            whitespace_threshold=s.whitespace_threshold,
            grayspace_fraction=s.grayspace_fraction,
            grayspace_threshold=s.grayspace_threshold,
            qc=s.qc,
            qc_fraction=s.qc_fraction,
            filter_rule=s.filter_rule,
        )
        kept = np.flatnonzero(selection.keep)
        image, downsample = wsi.thumbnail()
        thumbnail = draw_thumbnail(
            image,
            downsample,
            corners=wsi.corners[kept],
            footprint=wsi.geometry.full_extract_px,
            qc_mask=selection.qc_mask,
            rois=[roi.geometry for roi in wsi.rois],
        )
        save_image(thumbnail, job.thumbnail)
        return SlidePlan(
            indices=kept,
            locations=wsi.locations,
            level_rows=wsi.level_corners[:, 1],
            mpp=wsi.mpp,
            level=wsi.geometry.level,
            num_rois=len(wsi.rois),
        )


_open_slide: tuple[SlideJob, WSI] | None = None  # per process: the slide last read


def close_cached_slide() -> None:
    """Close the slide `read_chunk` keeps open between chunks of one slide."""
    global _open_slide
    if _open_slide is not None:
        _open_slide[1].close()
        _open_slide = None


def read_chunk(job: SlideJob, indices: np.ndarray) -> list[tuple[int, bytes]]:
    """Read and encode some tiles of one slide → [(grid index, image bytes)]."""
    global _open_slide
    if _open_slide is None or _open_slide[0] != job:
        close_cached_slide()
        _open_slide = (job, job.open())
    wsi = _open_slide[1]
    s = job.settings
    return [(i, encode_tile(t, s.img_format, s.jpeg_quality)) for i, t in wsi.read_tiles(indices)]


def encode_tile(tile: np.ndarray, img_format: str = "jpg", jpeg_quality: int = 95) -> bytes:
    """Encode an RGB uint8 tile as JPEG (``quality``) or lossless PNG."""
    buffer = io.BytesIO()
    if img_format == "png":
        Image.fromarray(tile).save(buffer, format="PNG")
    else:
        Image.fromarray(tile).save(buffer, format="JPEG", quality=jpeg_quality)
    return buffer.getvalue()
