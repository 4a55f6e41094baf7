"""Extraction reports: per-slide thumbnails with the QC mask and kept tiles, a CSV, an HTML page.

Every file is written atomically (`jaxwsi.atomic`), so readers never see a partial report. The
columns are the slide's facts plus one per `ExtractionSettings` field (``mpp`` is the µm per
pixel used: the slide's own unless overridden); ``roi_files`` lists the ROI files read.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw
from shapely.geometry.base import BaseGeometry

from jaxwsi.atomic import atomic_path, write_text_atomic
from jaxwsi.slide.settings import setting_names

if TYPE_CHECKING:
    import pandas as pd

REPORT_COLUMNS = (
    "slide",
    "num_tiles",
    *setting_names(),
    "level",
    "num_rois",
    "roi_files",
    "seconds",
    "error",
    "path",
)

_QC_TINT = (40, 90, 230)  # masked areas are tinted blue
_TILE_OUTLINE = (0, 170, 0)  # kept tiles outlined in green
_ROI_OUTLINE = (240, 200, 0)  # ROI boundaries in yellow


def draw_thumbnail(
    image: np.ndarray,
    downsample: float,
    *,
    corners: np.ndarray,
    footprint: int,
    qc_mask: np.ndarray | None = None,
    rois: Sequence[BaseGeometry] = (),
    max_side: int = 1024,
) -> Image.Image:
    """The slide thumbnail with QC-masked areas tinted and kept tiles and ROIs outlined.

    ``image`` shows the slide at ``downsample``; ``corners`` are the kept tiles' level-0 top-left
    corners and ``footprint`` their level-0 side; ``qc_mask`` (True = excluded) has the image's
    shape.
    """
    rgb = image.astype(np.float32)
    if qc_mask is not None:
        rgb[qc_mask] = 0.55 * rgb[qc_mask] + 0.45 * np.array(_QC_TINT, np.float32)
    thumb = Image.fromarray(rgb.astype(np.uint8))
    scale = min(1.0, max_side / max(thumb.size))
    if scale < 1.0:
        size = (max(1, round(thumb.width * scale)), max(1, round(thumb.height * scale)))
        thumb = thumb.resize(size, Image.Resampling.BILINEAR)
    to_thumb = scale / downsample
    draw = ImageDraw.Draw(thumb)
    side = footprint * to_thumb
    for x, y in np.asarray(corners).reshape(-1, 2):
        left, top = x * to_thumb, y * to_thumb
        draw.rectangle((left, top, left + side, top + side), outline=_TILE_OUTLINE)
    for geometry in rois:
        for polygon in getattr(geometry, "geoms", [geometry]):
            for ring in [polygon.exterior, *polygon.interiors]:
                points = [(px * to_thumb, py * to_thumb) for px, py in ring.coords]
                draw.line(points, fill=_ROI_OUTLINE, width=2)
    return thumb


def save_image(image: Image.Image, path: Path) -> None:
    """Save a PNG atomically."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", compress_level=1)


def write_report(records: Sequence[dict], directory: Path) -> tuple[Path, Path]:
    """Write ``extraction_report.csv`` and ``extraction_report.html`` into ``directory``.

    ``records`` hold the ``REPORT_COLUMNS`` of each slide (missing ones are left empty) and
    optionally ``thumbnail``: the PNG path relative to ``directory``.
    """
    import pandas as pd

    frame = pd.DataFrame(list(records), columns=[*REPORT_COLUMNS, "thumbnail"])
    frame = frame.sort_values("slide", kind="stable")
    csv_path = directory / "extraction_report.csv"
    write_text_atomic(csv_path, frame[list(REPORT_COLUMNS)].to_csv(index=False))
    html_path = directory / "extraction_report.html"
    write_text_atomic(html_path, _html(frame))
    return csv_path, html_path


def _html(frame: pd.DataFrame) -> str:
    import pandas as pd

    failed = int(frame["error"].fillna("").astype(str).ne("").sum())
    total_tiles = int(pd.to_numeric(frame["num_tiles"], errors="coerce").fillna(0).sum())
    cards = "\n".join(_card(row) for row in frame.to_dict("records"))
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Tile extraction report</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
.card {{ display: inline-block; vertical-align: top; margin: 0.5em; padding: 0.5em;
         border: 1px solid #ccc; width: 420px; }}
.card img {{ max-width: 100%; }}
.error {{ color: #b00; white-space: pre-wrap; }}
td {{ padding: 0 0.5em; }}
</style></head><body>
<h1>Tile extraction report</h1>
<p>{len(frame)} slides, {total_tiles} tiles, {failed} failed.
Thumbnails: QC-masked areas tinted blue, kept tiles outlined green, ROIs yellow.</p>
{cards}
</body></html>
"""


def _card(row: dict) -> str:
    def text(value: object) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return str(value)

    fields = ("num_tiles", "tile_px", "tile_um", "mpp", "qc", "roi_method", "num_rois", "seconds")
    table = "".join(
        f"<tr><td>{name}</td><td>{html.escape(text(row.get(name)))}</td></tr>" for name in fields
    )
    thumbnail = text(row.get("thumbnail"))
    image = f'<img src="{html.escape(thumbnail)}" alt="thumbnail">' if thumbnail else ""
    error = text(row.get("error"))
    error_html = f'<p class="error">{html.escape(error)}</p>' if error else ""
    return (
        f'<div class="card"><h3>{html.escape(text(row.get("slide")))}</h3>{image}'
        f"<table>{table}</table>{error_html}</div>"
    )
