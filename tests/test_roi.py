"""ROIs from QuPath CSV and GeoJSON: holes, inside/outside/auto/ignore, and bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jaxwsi.slide import WSI, ROIError, load_rois, roi_keep
from jaxwsi.testing import synthetic_slide

# Points: in the outer square only, in the hole, on the island, in the triangle, outside all,
# in the GeoJSON square-with-hole, and in that square's hole.
POINTS = np.array([[200, 200], [350, 350], [500, 500], [1100, 200], [950, 950],
                   [1050, 1050], [1200, 1200]])  # fmt: skip


def test_csv_nesting_makes_holes_and_islands(fixtures_dir):
    rois = load_rois(fixtures_dir / "rois" / "nested.csv")
    assert sorted(r.name for r in rois) == ["island", "outer", "triangle"]
    assert {r.name: r.label for r in rois}["triangle"] == "stroma"
    inside = roi_keep(POINTS, rois, "inside")
    assert inside.tolist() == [True, False, True, True, False, False, False]
    assert roi_keep(POINTS, rois, "outside").tolist() == (~inside).tolist()
    assert roi_keep(POINTS, rois, "auto").tolist() == inside.tolist()
    assert roi_keep(POINTS, rois, "ignore").all()


def test_geojson_polygon_and_multipolygon_holes(fixtures_dir):
    rois = load_rois(fixtures_dir / "rois" / "qupath.geojson")
    assert [(r.name, r.label) for r in rois] == [("ring", "Tumor"), ("feature_1", "Stroma")]
    inside = roi_keep(POINTS, rois, "inside")
    assert inside.tolist() == [True, False, False, True, False, True, False]


def test_no_rois():
    assert roi_keep(POINTS, [], "auto").all()
    assert roi_keep(POINTS, [], "outside").all()
    with pytest.raises(ROIError, match="s.svs: roi_method='inside' but the slide has no ROIs"):
        roi_keep(POINTS, [], "inside", slide_name="s.svs")
    with pytest.raises(ValueError, match="roi_method must be one of"):
        roi_keep(POINTS, [], "around")


def test_wsi_applies_rois(tmp_path, fixtures_dir):
    path = synthetic_slide(tmp_path / "s.tiff", width=1536, height=1536, mpp=0.5)
    csv = fixtures_dir / "rois" / "nested.csv"
    with WSI(path, 50, 50, rois=csv) as wsi:  # 100 px tiles, centres at 50, 150, ...
        expected = roi_keep(wsi.locations, load_rois(csv), "inside")
        np.testing.assert_array_equal(wsi.in_roi, expected)
        assert 0 < wsi.in_roi.sum() < len(wsi)
        centres = wsi.locations[wsi.in_roi]
        in_hole = (centres >= 300).all(axis=1) & (centres <= 700).all(axis=1)
        on_island = (centres >= 450).all(axis=1) & (centres <= 550).all(axis=1)
        assert (on_island[in_hole]).all()  # the only kept tiles in the hole are on the island
        selection = wsi.select_tiles(grayspace_fraction=1.0)
        np.testing.assert_array_equal(selection.keep, wsi.in_roi)
    with WSI(path, 50, 50, rois=[csv], roi_method="outside") as wsi:
        np.testing.assert_array_equal(wsi.in_roi, ~expected)
    with WSI(path, 50, 50, rois=csv, roi_method="ignore") as wsi:
        assert wsi.in_roi.all()


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_bad_csv(tmp_path):
    with pytest.raises(ROIError, match=r"a\.csv: missing column\(s\) Y_base"):
        load_rois(_write(tmp_path, "a.csv", "ROI_name,X_base\nr,1\n"))
    bad_number = "ROI_name,X_base,Y_base\nr,1,1\nr,2,x\nr,3,0\n"
    with pytest.raises(ROIError, match=r"b\.csv, row 3: X_base/Y_base must be numbers"):
        load_rois(_write(tmp_path, "b.csv", bad_number))
    with pytest.raises(ROIError, match=r"c\.csv: ROI 'r' has 2 point\(s\)"):
        load_rois(_write(tmp_path, "c.csv", "ROI_name,X_base,Y_base\nr,1,1\nr,2,2\n"))
    with pytest.raises(ROIError, match=r"d\.csv, row 2: coordinates must be finite"):
        load_rois(_write(tmp_path, "d.csv", "ROI_name,X_base,Y_base\nr,nan,1\n"))


def test_bad_geojson(tmp_path):
    with pytest.raises(ROIError, match=r"a\.geojson: not valid JSON"):
        load_rois(_write(tmp_path, "a.geojson", "{"))
    line = {"type": "Feature", "geometry": {"type": "GeometryCollection", "geometries": []}}
    with pytest.raises(
        ROIError, match=r"b\.geojson, feature 0: geometry type 'GeometryCollection'"
    ):
        load_rois(_write(tmp_path, "b.geojson", json.dumps([line])))
    with pytest.raises(ROIError, match=r"c\.geojson, feature 1: no geometry"):
        load_rois(_write(tmp_path, "c.geojson", json.dumps([line | {"geometry": {
            "type": "Point", "coordinates": [0, 0]}}, {"type": "Feature"}])))  # fmt: skip
    broken = {"type": "Polygon", "coordinates": [[[0, 0], [1]]]}
    with pytest.raises(ROIError, match=r"d\.geojson, feature 0: bad Polygon"):
        load_rois(_write(tmp_path, "d.geojson", json.dumps(broken)))
    with pytest.raises(ROIError, match=r"e\.json: expected a GeoJSON"):
        load_rois(_write(tmp_path, "e.json", "[1, 2]"))
    with pytest.raises(ROIError, match=r"f\.xml: ROI files must be"):
        load_rois(_write(tmp_path, "f.xml", "<xml/>"))
    with pytest.raises(ROIError, match=r"none\.csv: ROI file not found"):
        load_rois(tmp_path / "none.csv")


def test_self_intersecting_polygon_is_repaired(tmp_path):
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]]}
    (roi,) = load_rois(_write(tmp_path, "bowtie.geojson", json.dumps(bowtie)))
    assert roi.geometry.is_valid
    assert roi.geometry.area == pytest.approx(50)
