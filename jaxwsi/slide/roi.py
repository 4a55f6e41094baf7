"""Regions of interest from QuPath: CSV (``ROI_name, X_base, Y_base``, optional ``label``) and
GeoJSON (``Polygon``/``MultiPolygon`` features, holes respected). Coordinates are level-0 pixels.

In a CSV each ``ROI_name`` lists one polygon's vertices in order. A CSV polygon lying inside
another becomes a hole in it (and one inside that hole an island again), as in Slideflow.
GeoJSON features without area (points, lines) are skipped; invalid polygons are repaired.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import Polygon, shape
from shapely.geometry.base import BaseGeometry

from jaxwsi.slide.errors import ROIError

ROI_METHODS = ("inside", "outside", "auto", "ignore")
_CSV_COLUMNS = ("ROI_name", "X_base", "Y_base")


@dataclass(frozen=True)
class ROI:
    """One annotated region: its name, optional label and area (level-0 pixel coordinates)."""

    name: str
    geometry: BaseGeometry
    label: str | None = None


def load_rois(path: str | Path) -> list[ROI]:
    """Read the ROIs of one QuPath CSV or GeoJSON file (chosen by the file suffix)."""
    path = Path(path)
    if not path.is_file():
        raise ROIError(f"{path}: ROI file not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _load_csv(path)
    if suffix in (".geojson", ".json"):
        return _load_geojson(path)
    raise ROIError(f"{path}: ROI files must be .csv (QuPath) or .geojson/.json, got {suffix!r}")


def _load_csv(path: Path) -> list[ROI]:
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        missing = [c for c in _CSV_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ROIError(
                f"{path}: missing column(s) {', '.join(missing)}; "
                f"QuPath ROI CSVs have {', '.join(_CSV_COLUMNS)} (and optionally label)"
            )
        points: dict[str, list[tuple[float, float]]] = {}
        labels: dict[str, str | None] = {}
        for row_number, row in enumerate(reader, start=2):  # row 1 is the header
            name = row["ROI_name"]
            try:
                xy = (float(row["X_base"]), float(row["Y_base"]))
            except (TypeError, ValueError):
                raise ROIError(
                    f"{path}, row {row_number}: X_base/Y_base must be numbers, "
                    f"got {row['X_base']!r}, {row['Y_base']!r}"
                ) from None
            if not all(np.isfinite(xy)):
                raise ROIError(f"{path}, row {row_number}: coordinates must be finite, got {xy}")
            points.setdefault(name, []).append(xy)
            labels.setdefault(name, row.get("label") or None)
    polygons = []
    for name, vertices in points.items():
        if len(vertices) < 3:
            raise ROIError(f"{path}: ROI {name!r} has {len(vertices)} point(s); a polygon needs 3")
        polygons.append(ROI(name, _repair(Polygon(vertices)), labels[name]))
    return _nest_holes(polygons)


def _nest_holes(rois: list[ROI]) -> list[ROI]:
    """Polygons at odd nesting depth become holes in their parent; islands in holes stay ROIs."""
    depth = [
        sum(other.geometry.contains(roi.geometry) for other in rois if other is not roi)
        for roi in rois
    ]
    kept = []
    for roi, d in zip(rois, depth, strict=True):
        if d % 2:
            continue
        holes = [
            inner.geometry
            for inner, inner_depth in zip(rois, depth, strict=True)
            if inner_depth == d + 1 and roi.geometry.contains(inner.geometry)
        ]
        area = roi.geometry.difference(shapely.union_all(holes)) if holes else roi.geometry
        kept.append(ROI(roi.name, area, roi.label))
    return kept


def _load_geojson(path: Path) -> list[ROI]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ROIError(f"{path}: not valid JSON ({error})") from None
    rois = []
    for index, feature in enumerate(_features(data, path)):
        geometry = feature.get("geometry")
        if not isinstance(geometry, dict) or "type" not in geometry:
            raise ROIError(f"{path}, feature {index}: no geometry")
        if geometry["type"] in ("Point", "MultiPoint", "LineString", "MultiLineString"):
            continue
        if geometry["type"] not in ("Polygon", "MultiPolygon"):
            raise ROIError(
                f"{path}, feature {index}: geometry type {geometry['type']!r} is not supported "
                "(Polygon or MultiPolygon)"
            )
        try:
            area = _repair(shape(geometry))
        except (
            ValueError,
            TypeError,
            AttributeError,
            IndexError,
            shapely.errors.ShapelyError,
        ) as e:
            raise ROIError(f"{path}, feature {index}: bad {geometry['type']} ({e})") from None
        properties = feature.get("properties") or {}
        rois.append(ROI(_feature_name(properties, index), area, _feature_label(properties)))
    return rois


def _features(data: object, path: Path) -> Iterable[dict]:
    """Features of a FeatureCollection, a list of features (QuPath), a Feature or a geometry."""
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        data = data.get("features")
    elif isinstance(data, dict) and data.get("type") in ("Polygon", "MultiPolygon"):
        data = [{"type": "Feature", "geometry": data}]
    elif isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(f, dict) for f in data):
        raise ROIError(f"{path}: expected a GeoJSON FeatureCollection, Feature list or geometry")
    return data


def _feature_name(properties: dict, index: int) -> str:
    name = properties.get("name")
    return str(name) if name else f"feature_{index}"


def _feature_label(properties: dict) -> str | None:
    classification = properties.get("classification")
    if isinstance(classification, dict) and classification.get("name"):
        return str(classification["name"])
    label = properties.get("label")
    return str(label) if label is not None else None


def _repair(geometry: BaseGeometry) -> BaseGeometry:
    """Keep only the areal part of a geometry, fixing self-intersections."""
    if not geometry.is_valid:
        geometry = shapely.make_valid(geometry)
        parts = getattr(geometry, "geoms", [geometry])
        geometry = shapely.union_all([g for g in parts if g.area > 0])
    return geometry


def roi_keep(
    centres: np.ndarray, rois: Sequence[ROI], method: str, *, slide_name: str = "slide"
) -> np.ndarray:
    """Which tiles to keep, bool [N], by whether their level-0 centre lies in the ROIs.

    ``inside``: centre within an ROI (error if the slide has none); ``outside``: not within any;
    ``auto``: inside when there are ROIs, else every tile; ``ignore``: every tile.
    """
    if method not in ROI_METHODS:
        raise ValueError(f"roi_method must be one of {ROI_METHODS}, got {method!r}")
    centres = np.asarray(centres, np.float64).reshape(-1, 2)
    if method == "ignore" or (method == "auto" and not rois):
        return np.ones(len(centres), bool)
    if method == "inside" and not rois:
        raise ROIError(f"{slide_name}: roi_method='inside' but the slide has no ROIs")
    if not rois:
        return np.ones(len(centres), bool)
    area = shapely.union_all([roi.geometry for roi in rois])
    within = shapely.contains_xy(area, centres[:, 0], centres[:, 1])
    return within if method in ("inside", "auto") else ~within
