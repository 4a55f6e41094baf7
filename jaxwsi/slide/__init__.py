"""Whole-slide image reading, tiling, QC, ROIs and tile extraction."""

from jaxwsi.slide.errors import MissingMPPError, ROIError, SlideError
from jaxwsi.slide.extract import (
    SLIDE_EXTENSIONS,
    ExtractionSettings,
    encode_tile,
    extract_tiles,
    select_shard,
)
from jaxwsi.slide.grid import TileGeometry, grid_positions, tile_geometry, tile_size_label
from jaxwsi.slide.qc import blur_mask, otsu_mask
from jaxwsi.slide.roi import ROI, load_rois, roi_keep
from jaxwsi.slide.wsi import WSI, TileSelection, slide_name

__all__ = [
    "ROI",
    "SLIDE_EXTENSIONS",
    "WSI",
    "ExtractionSettings",
    "MissingMPPError",
    "ROIError",
    "SlideError",
    "TileGeometry",
    "TileSelection",
    "blur_mask",
    "encode_tile",
    "extract_tiles",
    "grid_positions",
    "load_rois",
    "otsu_mask",
    "roi_keep",
    "select_shard",
    "slide_name",
    "tile_geometry",
    "tile_size_label",
]
