"""Heatmaps: a slide's tile predictions drawn over its thumbnail, one PNG per outcome class.

Read the way Slideflow's heatmaps are read: each tile's footprint on the thumbnail is coloured by
the predicted probability of one class (colour bar 0–1), background tiles stay transparent.
Inputs are a tile-level predictions table in Slideflow's columns (``slide``, ``loc_x``,
``loc_y`` = level-0 tile centres, ``{outcome}-y_pred{i}``) and the slide file.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from jaxwsi.atomic import write_bytes_atomic

_PRED = re.compile(r"^(?P<outcome>.+)-y_pred(?P<index>\d+)$")


def prediction_columns(table: pd.DataFrame) -> dict[str, list[str]]:
    """Outcome → its ``{outcome}-y_pred{i}`` columns in class order."""
    found: dict[str, dict[int, str]] = {}
    for column in table.columns:
        match = _PRED.match(str(column))
        if match:
            found.setdefault(match["outcome"], {})[int(match["index"])] = str(column)
    return {outcome: [cols[i] for i in sorted(cols)] for outcome, cols in found.items()}


def prediction_grid(
    locations: np.ndarray,
    values: np.ndarray,
    shape: tuple[int, int],
    downsample: float,
    footprint: float,
) -> np.ndarray:
    """A float image of ``shape`` (thumbnail rows, cols): each tile's square footprint (level-0
    side ``footprint``, centred at its level-0 location) filled with its value; NaN elsewhere.
    Overlapping tiles (stride_div > 1): the later one wins."""
    grid = np.full(shape, np.nan, np.float32)
    half = footprint / 2 / downsample
    for (x, y), value in zip(np.asarray(locations) / downsample, values, strict=True):
        x0, x1 = int(round(x - half)), int(round(x + half))
        y0, y1 = int(round(y - half)), int(round(y + half))
        grid[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = value
    return grid


def render_heatmap(
    thumbnail: np.ndarray, grid: np.ndarray, title: str, *, cmap: str = "coolwarm"
) -> bytes:
    """PNG bytes: the thumbnail with ``grid`` (probabilities in [0, 1], NaN = none) over it and a
    colour bar."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height, width = thumbnail.shape[:2]
    figure = Figure(figsize=(6.4, 6.4 * height / width + 0.6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.imshow(thumbnail)
    image = axes.imshow(
        np.ma.masked_invalid(grid), cmap=cmap, vmin=0.0, vmax=1.0, alpha=0.6, interpolation="none"
    )
    axes.set_title(title, fontsize=9)
    axes.set_axis_off()
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.02, label="predicted probability")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def slide_heatmaps(
    slide_path: str | Path,
    tiles: pd.DataFrame,
    *,
    tile_px: int,
    tile_um: int | str,
    outdir: str | Path,
    class_names: dict[str, list[str]] | None = None,
) -> list[Path]:
    """Write ``{slide}-{outcome}-{class}.png`` for every outcome class of one slide's tile
    predictions (rows of ``tiles`` for that slide) into ``outdir``; returns the paths."""
    from jaxwsi.slide.wsi import WSI

    slide_path = Path(slide_path)
    columns = prediction_columns(tiles)
    if not columns:
        raise ValueError(
            f"{slide_path.name}: the predictions have no '{{outcome}}-y_pred{{i}}' columns"
        )
    with WSI(slide_path, tile_px, tile_um) as wsi:
        thumbnail, downsample = wsi.thumbnail()
        footprint = wsi.geometry.full_extract_px
    locations = tiles[["loc_x", "loc_y"]].to_numpy(np.float64)
    written = []
    for outcome, cols in columns.items():
        names = (class_names or {}).get(outcome) or [str(i) for i in range(len(cols))]
        for name, column in zip(names, cols, strict=False):
            grid = prediction_grid(
                locations,
                tiles[column].to_numpy(np.float32),
                thumbnail.shape[:2],
                downsample,
                footprint,
            )
            title = f"{wsi.name}: P({outcome} = {name}), {len(tiles)} tiles"
            path = Path(outdir) / f"{wsi.name}-{outcome}-{_safe(name)}.png"
            write_bytes_atomic(path, render_heatmap(thumbnail, grid, title))
            written.append(path)
    return written


def _safe(text: str) -> str:
    """A file-name-safe form of a class name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)) or "_"
