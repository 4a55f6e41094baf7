"""`predict_slide`: a trained MIL model straight on a whole-slide image, without bags on disk.

Tiles are read from the slide at the tile size the bags were made with, filtered like tile
extraction does by default (whitespace/grayspace), embedded by the extractor recorded in the
bags' ``bags_config.json`` (its weights file must still hash the same), and the bag goes through
the model: probabilities (a regression model: its raw outputs, one per outcome), per-tile
attention and optionally the heatmap over the thumbnail.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from jaxwsi.dataset.labels import as_headers
from jaxwsi.mil.data import MILData
from jaxwsi.mil.errors import MILConfigError
from jaxwsi.mil.extractor import (
    FeatureExtractor,
    devices_multiple,
    feature_extractor,
    file_sha256,
)
from jaxwsi.mil.heatmap import save_heatmap
from jaxwsi.mil.predict import predict_with_saved_config
from jaxwsi.mil.saved import load_mil_model
from jaxwsi.models import Preprocessing, names


@dataclasses.dataclass
class SlidePrediction:
    """``probs`` [C] (with ``categories``; for a regression model the predicted values, with
    the outcome names as ``categories``), ``uncertainty`` [C] or None, per-tile ``attention``
    [N] at ``locations`` [N, 2] (level-0 centres)."""

    probs: np.ndarray
    uncertainty: np.ndarray | None
    attention: np.ndarray
    locations: np.ndarray
    categories: list[str]


def predict_slide(
    model_dir: str | os.PathLike[str],
    slide: str | os.PathLike[str],
    *,
    extractor: Any = None,
    weights: str | os.PathLike[str] | None = None,
    heatmap: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
    mpp: float | None = None,
    uq: bool | None = None,
    **tile_filters: Any,
) -> SlidePrediction:
    """Predict one slide with the model in ``model_dir`` (see the module docstring).

    ``extractor``/``weights`` override the recorded extractor or its weights path (the file
    must hash as recorded); ``heatmap``: a PNG path; ``tile_filters`` go to
    `jaxwsi.slide.WSI.select_tiles` (whitespace_fraction, qc, ...)."""
    from jaxwsi.slide import WSI

    model, params = load_mil_model(model_dir)
    encoder = params.get("bags_encoder") or {}
    fx = _extractor(encoder, extractor, weights, model_dir)
    tile_px, tile_um = encoder.get("tile_px"), encoder.get("tile_um")
    if tile_px is None or tile_um is None:
        raise MILConfigError(f"{model_dir}: the bags' tile_px/tile_um are unknown")
    with WSI(slide, tile_px, tile_um, mpp=mpp) as wsi:
        keep = np.flatnonzero(wsi.select_tiles(**tile_filters).keep)
        if not len(keep):
            raise MILConfigError(f"{slide}: no tile passes the filters")
        batch = devices_multiple(batch_size)
        indexes, features, pending = [], [], []
        for index, image in wsi.read_tiles(keep):
            indexes.append(index)
            pending.append(image)
            if len(pending) == batch:
                features.append(np.asarray(fx.embed(np.stack(pending))))
                pending = []
        if pending:
            n = len(pending)
            padded = np.concatenate(
                [np.stack(pending), np.zeros((batch - n, *pending[0].shape), np.uint8)]
            )
            features.append(np.asarray(fx.embed(padded))[:n])
        locations = wsi.locations[np.asarray(indexes)]
        thumbnail, downsample = wsi.thumbnail() if heatmap is not None else (None, None)
        extent = wsi.geometry.full_extract_px
    bag = np.concatenate(features)
    data = MILData(
        [Path(slide).stem],
        [bag],
        [locations],
        [[Path(slide).stem]],
        [[len(bag)]],
        np.array([-1], np.int32),
    )
    config = params["params"]
    probs, unc, attention = predict_with_saved_config(model, data, config, uq)
    if heatmap is not None:
        save_heatmap(
            heatmap,
            locations,
            attention[0],
            thumbnail=thumbnail,
            downsample=downsample,
            tile_extent=extent,
        )
    return SlidePrediction(
        probs[0],
        None if unc is None else unc[0],
        attention[0],
        locations,
        _output_names(params),
    )


def _output_names(params: dict[str, Any]) -> list[str]:
    """The class names, or a regression model's outcome names (its ``outcome_labels`` None)."""
    labels = params["outcome_labels"]
    return as_headers(params["outcomes"]) if labels is None else list(labels)


def _extractor(
    encoder: dict[str, Any], extractor: Any, weights: Any, model_dir: Any
) -> FeatureExtractor:
    if extractor is not None:
        return feature_extractor(extractor, weights=weights, preprocessing=_preprocessing(encoder))
    name = encoder.get("extractor")
    if name not in names("extractor"):
        raise MILConfigError(
            f"{model_dir}: its bags came from extractor {name!r}, which is not a registered "
            "extractor; pass extractor= (the same model) to predict_slide"
        )
    path = weights if weights is not None else encoder.get("weights")
    recorded = encoder.get("weights_sha256")
    if path is not None and recorded is not None and file_sha256(path) != recorded:
        raise MILConfigError(
            f"{path}: this weights file differs from the one the bags were made with "
            f"(sha256 {recorded[:12]}…); pass weights= with the original file"
        )
    return feature_extractor(
        name,
        weights=path,
        dtype=encoder.get("dtype", "float32"),
        normalizer=encoder.get("normalizer"),
    )


def _preprocessing(encoder: dict[str, Any]) -> Preprocessing | None:
    pre = encoder.get("preprocessing")
    if pre is None:
        return None
    return Preprocessing(size=pre["size"], mean=tuple(pre["mean"]), std=tuple(pre["std"]))
