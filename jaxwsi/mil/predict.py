"""Predictions of a MIL model on bags: probabilities (raw values for regression), optional
MC-dropout uncertainty, attention; the validation metrics; and the files Slideflow writes for
them (``predictions.parquet``, ``attention/{name}_att.npz``, ``heatmaps/{name}.png``).
`eval_mil` and `predict_mil` run them from a trained model folder."""

from __future__ import annotations

import dataclasses
import io
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
import pandas as pd
from sklearn.metrics import roc_auc_score

from jaxwsi.atomic import write_bytes_atomic
from jaxwsi.dataset import Dataset
from jaxwsi.dataset.labels import as_headers
from jaxwsi.mil.bags import BagsSource
from jaxwsi.mil.config import MILConfig
from jaxwsi.mil.data import MILData, eval_batches, mil_data
from jaxwsi.mil.errors import BagError, MILConfigError
from jaxwsi.mil.heatmap import save_heatmap
from jaxwsi.mil.saved import load_mil_model
from jaxwsi.mil.steps import make_predict_fns
from jaxwsi.train.mesh import data_mesh, replicate
from jaxwsi.train.state import TrainState
from jaxwsi.train.step import make_eval_step

log = logging.getLogger(__name__)


class Predictor:
    """Compiled eval (and MC-dropout) steps over a mesh; call with a state and bags. Outputs
    are softmax probabilities, or the raw values with ``regression``."""

    def __init__(self, mesh: Any, *, regression: bool) -> None:
        self.mesh = mesh
        predict_fn, mc_predict_fn = make_predict_fns(regression)
        self._eval = make_eval_step(predict_fn, mesh)
        self._mc = make_eval_step(mc_predict_fn, mesh, rng=True)

    def __call__(
        self,
        state: TrainState,
        data: MILData,
        *,
        uq_samples: int = 0,
        max_bag_size: int | None = None,
        seed: int = 0,
    ) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray]]:
        """(outputs [M, C], uncertainty [M, C] or None, attention per bag). With ``uq_samples``
        the prediction is the mean of that many dropout samples and the uncertainty their
        standard deviation (Slideflow's ``uq``); attention is always the eval-mode one."""
        devices = self.mesh.devices.size
        probs: list[np.ndarray] = [None] * len(data)  # type: ignore[list-item]
        unc: list[np.ndarray] = [None] * len(data)  # type: ignore[list-item]
        attention: list[np.ndarray] = [None] * len(data)  # type: ignore[list-item]
        base_key = jax.random.key(seed)
        for rows, batch in eval_batches(
            data, devices=devices, max_bag_size=max_bag_size, seed=seed
        ):
            out = jax.device_get(self._eval(state, batch))
            samples = [
                jax.device_get(self._mc(state, batch, jax.random.fold_in(base_key, i)))["outputs"]
                for i in range(uq_samples)
            ]
            for row, i in enumerate(rows):
                n = int(batch["mask"][row].sum())
                attention[i] = np.asarray(out["attention"][row, :n], np.float32)
                if samples:
                    stack = np.stack([s[row] for s in samples])
                    probs[i], unc[i] = stack.mean(0), stack.std(0)
                else:
                    probs[i] = out["outputs"][row]
        return np.stack(probs), (np.stack(unc) if uq_samples else None), attention


def predictions_frame(
    data: MILData, probs: np.ndarray, uncertainty: np.ndarray | None, level: str
) -> pd.DataFrame:
    """Slideflow's columns: ``slide`` / ``patient``, ``y_true`` (class index) or, for continuous
    outcomes, ``y_true{i}`` per outcome, ``y_pred{i}`` and, with uncertainty, ``uncertainty{i}``."""
    frame = pd.DataFrame({level: data.names})
    if data.labels.ndim == 2:
        for i in range(data.labels.shape[1]):
            frame[f"y_true{i}"] = data.labels[:, i]
    else:
        frame["y_true"] = data.labels
    for i in range(probs.shape[1]):
        frame[f"y_pred{i}"] = probs[:, i]
    if uncertainty is not None:
        for i in range(uncertainty.shape[1]):
            frame[f"uncertainty{i}"] = uncertainty[:, i]
    return frame


def roc_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean one-vs-rest AUROC over the classes present (NaN when only one class is)."""
    aucs = [
        roc_auc_score(labels == c, probs[:, c])
        for c in range(probs.shape[1])
        if 0 < np.sum(labels == c) < len(labels)
    ]
    return float(np.mean(aucs)) if aucs else float("nan")


def pearson_r(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's correlation coefficient (NaN when either side is constant)."""
    x, y = np.asarray(x, np.float64) - np.mean(x), np.asarray(y, np.float64) - np.mean(y)
    denominator = np.sqrt(np.sum(x * x) * np.sum(y * y))
    return float(np.sum(x * y) / denominator) if denominator > 0 else float("nan")


def regression_metrics(labels: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    """Per outcome i: ``mse{i}`` and ``pearson_r{i}`` of the predictions [M, K] against the
    targets [M, K]."""
    metrics = {}
    for i in range(labels.shape[1]):
        metrics[f"mse{i}"] = float(np.mean((outputs[:, i] - labels[:, i]) ** 2))
        metrics[f"pearson_r{i}"] = pearson_r(outputs[:, i], labels[:, i])
    return metrics


def write_predictions(outdir: Path, frame: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    write_bytes_atomic(outdir / "predictions.parquet", buffer.getvalue())


def write_attention(
    outdir: Path,
    data: MILData,
    attention: list[np.ndarray],
    *,
    heatmaps: bool = False,
    slide_paths: Mapping[str, str | os.PathLike[str]] | None = None,
    tile_px: int | None = None,
    tile_um: Any = None,
    cmap: str = "inferno",
) -> None:
    """Per slide (also within a patient's bag): ``attention/{slide}_att.npz`` (``arr_0``: the
    scores, as Slideflow writes them, plus ``locations``) and, with ``heatmaps``,
    ``heatmaps/{slide}.png`` over the slide thumbnail when the slide image is in ``slide_paths``
    (else on the bare tile grid)."""
    for att, locations, slides, lengths in zip(
        attention, data.locations, data.slides, data.slide_lengths, strict=True
    ):
        bounds = np.cumsum([0, *lengths])
        for slide, start, stop in zip(slides, bounds[:-1], bounds[1:], strict=True):
            slide_att, slide_loc = att[start:stop], locations[start:stop]
            buffer = io.BytesIO()
            np.savez(buffer, slide_att, locations=slide_loc)
            write_bytes_atomic(outdir / "attention" / f"{slide}_att.npz", buffer.getvalue())
            if heatmaps:
                _heatmap(
                    outdir / "heatmaps" / f"{slide}.png",
                    slide_loc,
                    slide_att,
                    (slide_paths or {}).get(slide),
                    tile_px,
                    tile_um,
                    cmap,
                )


def _heatmap(
    path: Path,
    locations: np.ndarray,
    attention: np.ndarray,
    slide_path: str | os.PathLike[str] | None,
    tile_px: int | None,
    tile_um: Any,
    cmap: str,
) -> None:
    """Over the slide's thumbnail when the slide image is known, else on the tile grid."""
    if slide_path is None or tile_px is None or tile_um is None:
        save_heatmap(path, locations, attention, cmap=cmap)
        return
    from jaxwsi.slide import WSI

    with WSI(slide_path, tile_px, tile_um) as wsi:
        thumbnail, downsample = wsi.thumbnail()
        extent = wsi.geometry.full_extract_px
    save_heatmap(
        path,
        locations,
        attention,
        thumbnail=thumbnail,
        downsample=downsample,
        tile_extent=extent,
        cmap=cmap,
    )


def predict_with_saved_config(
    model: Any, data: Any, config: dict[str, Any], uq: bool | None
) -> tuple[Any, Any, Any]:
    """(outputs, uncertainty, attention) of ``model`` on every bag of ``data`` on the local
    devices, with the loss, uq, bag-size and seed settings of a saved model's ``config`` (``uq``
    overrides its uq when not None)."""
    settings = MILConfig.from_dict(config)
    use_uq = settings.uq if uq is None else uq
    mesh = data_mesh(jax.local_devices())
    state = replicate(mesh, TrainState.create(model, optax.identity(), 0))
    return Predictor(mesh, regression=settings.is_regression)(
        state,
        data,
        uq_samples=settings.uq_samples if use_uq else 0,
        max_bag_size=settings.max_val_bag_size,
        seed=settings.seed,
    )


def predict_mil(
    model_dir: str | os.PathLike[str],
    dataset: Dataset,
    bags: BagsSource,
    *,
    outcome: str | Sequence[str] | None = None,
    uq: bool | None = None,
) -> tuple[pd.DataFrame, MILData, list[np.ndarray]]:
    """(predictions frame, the bags, attention per bag) of a trained model on ``dataset``'s
    bags at the model's aggregation level. Without ``outcome`` the truth is unknown: ``y_true``
    is -1 (classification) or every ``y_true{i}`` NaN (regression, whose ``outcome`` is one
    column per model output)."""
    model, params = load_mil_model(model_dir)
    config = params["params"]
    level = config["aggregation_level"]
    regression = MILConfig.from_dict(config).is_regression
    outputs = params["output_shape"]
    if regression and outcome is not None and len(as_headers(outcome)) != outputs:
        raise MILConfigError(
            f"the regression model in {model_dir} predicts {outputs} outcome(s) "
            f"{params['outcomes']}, got outcome={outcome!r}"
        )
    data = mil_data(
        dataset, bags, outcome=outcome, categories=params["outcome_labels"], level=level
    )
    if regression and outcome is None:
        data = dataclasses.replace(data, labels=np.full((len(data), outputs), np.nan, np.float32))
    if data.num_features != params["input_shape"]:
        raise BagError(
            f"the bags have {data.num_features} features, the model in {model_dir} takes "
            f"{params['input_shape']}: use bags from the extractor it was trained on "
            f"({(params.get('bags_encoder') or {}).get('extractor', 'unknown')})"
        )
    probs, unc, attention = predict_with_saved_config(model, data, config, uq)
    return predictions_frame(data, probs, unc, level), data, attention


def eval_mil(
    model_dir: str | os.PathLike[str],
    dataset: Dataset,
    outcome: str | Sequence[str],
    bags: BagsSource,
    outdir: str | os.PathLike[str],
    *,
    attention_heatmaps: bool = False,
    slide_paths: Mapping[str, str | os.PathLike[str]] | None = None,
    uq: bool | None = None,
    cmap: str = "inferno",
) -> pd.DataFrame:
    """Evaluate a trained model on ``dataset``: ``outdir/predictions.parquet``, attention,
    heatmaps (every model); returns the predictions, with the AUROC (regression: mse and
    Pearson r per outcome) logged."""
    frame, data, attention = predict_mil(model_dir, dataset, bags, outcome=outcome, uq=uq)
    outdir = Path(outdir)
    write_predictions(outdir, frame)
    write_attention(
        outdir,
        data,
        attention,
        heatmaps=attention_heatmaps,
        slide_paths=slide_paths,
        tile_px=dataset.tile_px,
        tile_um=dataset.tile_um,
        cmap=cmap,
    )
    outputs = frame[[c for c in frame.columns if c.startswith("y_pred")]].to_numpy()
    if data.labels.ndim == 2:
        metrics = regression_metrics(data.labels, outputs)
        log.info("%s on %d bags", ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()), len(data))
    else:
        log.info("AUROC %.4f on %d bags", roc_auc(data.labels, outputs), len(data))
    return frame
