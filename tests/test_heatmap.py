"""Heatmaps over a synthetic slide's thumbnail and the self-contained HTML report."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from jaxwsi.experiment.heatmap import prediction_columns, prediction_grid, slide_heatmaps
from jaxwsi.experiment.report import latest_predictions, write_report
from jaxwsi.experiment.results_log import update_results_log
from jaxwsi.slide import WSI
from jaxwsi.testing import synthetic_slide


@pytest.fixture(scope="module")
def slide(tmp_path_factory) -> Path:
    return synthetic_slide(
        tmp_path_factory.mktemp("slides") / "s1.tiff", width=1024, height=768, seed=3
    )


def test_prediction_grid_fills_each_footprint() -> None:
    grid = prediction_grid(
        np.array([[50, 50], [150, 50]]),
        np.array([0.2, 0.9]),
        (20, 40),
        downsample=5.0,
        footprint=100,
    )
    assert np.allclose(grid[0:20, 0:20], 0.2) and np.allclose(grid[0:20, 20:40], 0.9)
    assert np.isnan(
        prediction_grid(np.array([[50, 50]]), np.array([1.0]), (40, 40), 5.0, 100)[30:, 30:]
    ).all()


def test_prediction_columns_in_class_order() -> None:
    table = pd.DataFrame(columns=["slide", "y-y_pred10", "y-y_pred2", "z-y_pred0", "y-y_true"])
    assert prediction_columns(table) == {"y": ["y-y_pred2", "y-y_pred10"], "z": ["z-y_pred0"]}


def _tiles(slide: Path) -> pd.DataFrame:
    with WSI(slide, 64, 64) as wsi:
        keep = wsi.select_tiles(qc="otsu").keep
        locations = wsi.locations[keep]
        width = wsi.dimensions[0]
    p1 = locations[:, 0] / width  # left → right
    return pd.DataFrame(
        {
            "slide": "s1",
            "loc_x": locations[:, 0],
            "loc_y": locations[:, 1],
            "tissue-y_pred0": 1 - p1,
            "tissue-y_pred1": p1,
            "tissue-y_true": (p1 > 0.5).astype(int),
        }
    )


def test_one_png_per_class_with_the_thumbnail_size(slide: Path, tmp_path: Path) -> None:
    tiles = _tiles(slide)
    paths = slide_heatmaps(
        slide,
        tiles,
        tile_px=64,
        tile_um=64,
        outdir=tmp_path,
        class_names={"tissue": ["stroma", "tumour"]},
    )
    assert [p.name for p in paths] == ["s1-tissue-stroma.png", "s1-tissue-tumour.png"]
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    assert images[0].shape == images[1].shape and images[0].shape[1] == 640
    assert not np.array_equal(images[0], images[1])  # opposite probabilities, other colours


def test_report_embeds_everything_and_needs_no_server(slide: Path, tmp_path: Path) -> None:
    tiles = _tiles(slide)
    model = tmp_path / "00000-tissue-HP0"
    model.mkdir()
    tiles.to_parquet(model / "tile_predictions_val_epoch1.parquet")
    tiles.assign(**{"tissue-y_pred1": 0.5}).to_parquet(
        model / "tile_predictions_val_epoch2.parquet"
    )
    slide_heatmaps(slide, tiles, tile_px=64, tile_um=64, outdir=model / "heatmaps")
    update_results_log(model / "results_log.csv", model.name, {2: {"tile_auc": {"tissue": [1.0]}}})
    assert latest_predictions(model)[0] == "val_epoch2"
    page = write_report(model).read_text()
    assert "tile_auc-tissue" in page
    assert "ROC" in page and "Heatmaps" in page
    assert not re.search(r'src="(?!data:)', page)  # every image inline
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 4
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)


def test_report_of_a_missing_folder_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        write_report(tmp_path / "nope")
