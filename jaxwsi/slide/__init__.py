"""Whole-slide image reading, tiling, QC, ROIs and tile extraction.

Names are imported on first use (PEP 562), so ``jaxwsi.slide.grid`` or ``jaxwsi.slide.errors``
can be used (by the CLI, `jaxwsi.project`) without loading OpenSlide, SciPy and pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jaxwsi.lazy import lazy_names

if TYPE_CHECKING:
    from jaxwsi.slide.errors import MissingMPPError, ROIError, SlideError
    from jaxwsi.slide.extract import (
        SLIDE_EXTENSIONS,
        ExtractionError,
        encode_tile,
        extract_tiles,
        select_shard,
    )
    from jaxwsi.slide.grid import TileGeometry, grid_positions, tile_geometry, tile_size_label
    from jaxwsi.slide.qc import blur_mask, otsu_mask
    from jaxwsi.slide.roi import ROI, load_rois, roi_keep
    from jaxwsi.slide.settings import ExtractionSettings, SettingsMismatchError
    from jaxwsi.slide.wsi import WSI, TileSelection, slide_name

# Public name → the module that defines it.
_LAZY = {
    "MissingMPPError": ".errors",
    "ROIError": ".errors",
    "SlideError": ".errors",
    "SLIDE_EXTENSIONS": ".extract",
    "ExtractionError": ".extract",
    "encode_tile": ".extract",
    "extract_tiles": ".extract",
    "select_shard": ".extract",
    "TileGeometry": ".grid",
    "grid_positions": ".grid",
    "tile_geometry": ".grid",
    "tile_size_label": ".grid",
    "blur_mask": ".qc",
    "otsu_mask": ".qc",
    "ROI": ".roi",
    "load_rois": ".roi",
    "roi_keep": ".roi",
    "ExtractionSettings": ".settings",
    "SettingsMismatchError": ".settings",
    "WSI": ".wsi",
    "TileSelection": ".wsi",
    "slide_name": ".wsi",
}

__all__ = [
    "ExtractionError",
    "ExtractionSettings",
    "MissingMPPError",
    "ROI",
    "ROIError",
    "SLIDE_EXTENSIONS",
    "SettingsMismatchError",
    "SlideError",
    "TileGeometry",
    "TileSelection",
    "WSI",
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

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
