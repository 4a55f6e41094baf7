"""Extraction report pieces: the annotated thumbnail, the CSV and the HTML page."""

from __future__ import annotations

import numpy as np
import pandas as pd
from shapely.geometry import box

from jaxwsi.slide.report import REPORT_COLUMNS, draw_thumbnail, write_report


def test_thumbnail_shows_qc_mask_tiles_and_rois():
    image = np.full((100, 200, 3), 255, np.uint8)  # slide at downsample 4: 800 × 400 level 0
    qc_mask = np.zeros((100, 200), bool)
    qc_mask[:, :50] = True
    thumb = np.asarray(
        draw_thumbnail(
            image,
            4.0,
            corners=[[400, 200]],
            footprint=80,
            qc_mask=qc_mask,
            rois=[box(600, 40, 760, 120)],
        )  # fmt: skip
    )
    assert thumb.shape == (100, 200, 3)
    blue = thumb[50, 10]
    assert blue[2] > blue[0] + 50  # masked area tinted blue
    assert (thumb[50, 150] == 255).all()  # untouched background
    assert tuple(thumb[50, 100]) == (0, 170, 0)  # tile outline: left edge at x = 400 / 4
    assert tuple(thumb[60, 100]) == (0, 170, 0)
    assert (thumb[55, 110] == 255).all()  # inside the tile outline
    assert tuple(thumb[10, 170]) == (240, 200, 0)  # ROI top edge at y = 40 / 4
    assert (thumb[20, 170] == 255).all()  # inside the ROI


def test_thumbnail_is_shrunk_to_max_side():
    thumb = draw_thumbnail(np.zeros((300, 3000, 3), np.uint8), 1.0, corners=[], footprint=10)
    assert thumb.size == (1024, 102)


def test_report_files(tmp_path):
    records = [
        {"slide": "b", "num_tiles": 3, "mpp": 0.5, "error": None, "thumbnail": "report/b.png"},
        {"slide": "a <x>", "num_tiles": 0, "error": "SlideError: a.svs: broken", "thumbnail": None},
    ]
    csv_path, html_path = write_report(records, tmp_path)
    frame = pd.read_csv(csv_path)
    assert list(frame.columns) == list(REPORT_COLUMNS)
    assert frame["slide"].tolist() == ["a <x>", "b"]
    page = html_path.read_text()
    assert "2 slides, 3 tiles, 1 failed" in page
    assert "a &lt;x&gt;" in page and "a <x>" not in page
    assert '<img src="report/b.png"' in page
    assert "SlideError: a.svs: broken" in page
    assert not list(tmp_path.glob(".*tmp"))
