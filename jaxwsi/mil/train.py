"""`train_mil`: weakly supervised training on feature bags, top to bottom.

The step is the shared data-parallel one (`jaxwsi.train.make_train_step`: state replicated,
bags sharded over every device) on the MIL loss of `jaxwsi.mil.steps`; validation runs whole
bags bucketed by length after every epoch. Checkpoints (`jaxwsi.train.Checkpointer`) keep the
latest and the best by ``save_monitor``; a run that stops (Ctrl-C, SIGTERM, a crash) resumes
from ``outdir`` exactly: batches are a pure function of (seed, epoch), dropout of (seed, step).
At the end the best model is saved to ``outdir/model`` and its validation predictions,
attention and heatmaps are written. With a regression ``loss`` the outcomes are continuous
columns (one model output each) and validation reports mse and Pearson r per outcome.
"""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
import pandas as pd

from jaxwsi.atomic import write_bytes_atomic
from jaxwsi.dataset import Dataset
from jaxwsi.dataset.labels import as_headers
from jaxwsi.mil.bags import BagsSource, read_bags_config
from jaxwsi.mil.config import SAVE_MONITORS, MILConfig
from jaxwsi.mil.data import (
    check_disjoint,
    class_weights,
    classification_outcome,
    manifest,
    mil_data,
    outcome_labels,
    steps_per_epoch,
    train_batches,
)
from jaxwsi.mil.errors import BagError
from jaxwsi.mil.predict import (
    Predictor,
    predictions_frame,
    regression_metrics,
    roc_auc,
    write_attention,
    write_predictions,
)
from jaxwsi.mil.saved import build_model, save_model, write_params
from jaxwsi.mil.steps import (
    check_model_fits_loss,
    make_loss_fn,
    make_regression_loss_fn,
    regression_loss,
    weighted_cross_entropy,
)
from jaxwsi.train import (
    Checkpointer,
    EventLog,
    Progress,
    StopRequest,
    TrainState,
    data_mesh,
    make_optimizer,
    make_train_step,
    shard_batch,
)
from jaxwsi.train.mesh import replicate

log = logging.getLogger(__name__)


def train_mil(
    config: MILConfig,
    train_dataset: Dataset,
    val_dataset: Dataset | None,
    outcomes: str | Sequence[str],
    bags: BagsSource,
    outdir: str | os.PathLike[str],
    *,
    attention_heatmaps: bool = False,
    slide_paths: Mapping[str, str | os.PathLike[str]] | None = None,
    cmap: str = "inferno",
    progress: bool = True,
) -> pd.DataFrame | None:
    """Train ``config.model`` on the bags of ``train_dataset``, validating on ``val_dataset``
    (None: no validation, the last model is kept). Returns the validation predictions (None
    when stopped early by a signal: run again with the same ``outdir`` to resume).

    ``outcomes``: one categorical column (``cross_entropy``) or, with a regression
    ``config.loss``, one or more continuous columns.

    ``bags``: a folder of ``{slide}.npz`` / ``.h5`` bags or a list of files. ``slide_paths``
    (slide → image) puts the attention heatmaps on the slide thumbnails.
    """
    if val_dataset is not None and not len(val_dataset):
        val_dataset = None
    outcome: str | list[str]
    categories: list[str] | None = None  # None: continuous outcomes
    if config.is_regression:
        outcome = as_headers(outcomes)
    else:
        outcome = classification_outcome(outcomes)
        categories = outcome_labels([train_dataset, val_dataset], outcome)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    level = config.aggregation_level
    train = mil_data(train_dataset, bags, outcome=outcome, categories=categories, level=level)
    val = None
    if val_dataset is not None:
        val = mil_data(val_dataset, bags, outcome=outcome, categories=categories, level=level)
        check_disjoint(train, val)
        if val.num_features != train.num_features:
            raise BagError(
                f"validation bags have {val.num_features} features, training bags "
                f"{train.num_features}"
            )
    num_outputs = len(outcome) if categories is None else len(categories)

    mesh = data_mesh()
    batch_size = _batch_size(config.batch_size, len(train), mesh.devices.size)
    steps = steps_per_epoch(len(train), batch_size, config.drop_last)
    weights = (
        class_weights(train.labels, num_outputs)
        if config.weighted_loss and not config.is_regression
        else np.full(num_outputs, 1.0 / num_outputs, np.float32)
    )
    lr: Any = config.lr
    if config.fit_one_cycle:
        lr = optax.cosine_onecycle_schedule(steps * config.epochs, config.lr)
    tx = make_optimizer("adamw", lr, weight_decay=config.wd)
    model = build_model(config, train.num_features, num_outputs)
    check_model_fits_loss(model, config)
    state = replicate(mesh, TrainState.create(model, tx, config.seed))
    write_params(
        outdir,
        {
            "trainer": "jaxwsi",
            "params": config.to_dict(),
            "outcomes": outcome,
            "outcome_labels": categories,
            "bags": str(bags) if isinstance(bags, str | os.PathLike) else [str(b) for b in bags],
            "input_shape": train.num_features,
            "output_shape": num_outputs,
            "bags_encoder": read_bags_config(bags),
            "batch_size": batch_size,
            "steps_per_epoch": steps,
        },
    )
    write_bytes_atomic(
        outdir / "slide_manifest.csv", manifest(train, val, categories).to_csv(index=False).encode()
    )

    loss_fn = (
        make_regression_loss_fn(config.loss) if config.is_regression else make_loss_fn(weights)
    )
    train_step = make_train_step(loss_fn, mesh)
    predictor = Predictor(mesh, regression=config.is_regression)
    monitor = config.save_monitor if val_dataset is not None else None
    ckpt = Checkpointer(
        outdir / "checkpoints",
        keep_n_best=1 if monitor else None,
        best_metric=monitor,
        mode=SAVE_MONITORS[config.save_monitor],
    )
    start_epoch, skip, history, partial = 0, 0, [], [0.0, 0]
    if ckpt.latest_step() is not None:
        state, extra = ckpt.restore(state)
        start_epoch, skip = extra["epoch"], extra["batch"]
        history, partial = extra["history"], extra["partial_loss"]
        log.info("resuming %s at epoch %d, batch %d", outdir, start_epoch + 1, skip)

    with EventLog(outdir) as events, StopRequest() as stop:
        for epoch in range(start_epoch, config.epochs):
            started = time.perf_counter()
            losses = []
            batches = train_batches(
                train,
                bag_size=config.bag_size,
                batch_size=batch_size,
                drop_last=config.drop_last,
                seed=config.seed,
                epoch=epoch,
            )
            with Progress(
                steps, f"epoch {epoch + 1}/{config.epochs}", unit="step", disable=not progress
            ) as bar:
                for i, batch in enumerate(batches):
                    if i < skip:  # resumed mid-epoch: the same batches, already trained on
                        continue
                    state, metrics = train_step(state, shard_batch(mesh, batch))
                    losses.append(metrics["loss"])
                    bar.update(1, loss=metrics["loss"])
                    if stop.requested:
                        break
            loss_sum = partial[0] + float(np.sum(jax.device_get(losses)))
            count = partial[1] + len(losses)
            if stop.requested:
                ckpt.save(
                    int(state.step),
                    state,
                    extra={
                        "epoch": epoch,
                        "batch": skip + len(losses),
                        "history": history,
                        "partial_loss": [loss_sum, count],
                    },
                )
                ckpt.close()
                log.warning(
                    "stopped by %s; run again with the same outdir to resume", stop.signal_name
                )
                return None
            skip, partial = 0, [0.0, 0]
            row: dict[str, Any] = {"epoch": epoch, "train_loss": loss_sum / max(count, 1)}
            metrics_row = None
            if val is not None:
                outputs, _, _ = predictor(
                    state, val, max_bag_size=config.max_val_bag_size, seed=config.seed
                )
                metrics_row = _validation_metrics(config, outputs, val.labels, weights)
                row.update(metrics_row)
            row["seconds"] = time.perf_counter() - started  # training + validation
            history.append(row)
            events.scalars(
                {k: v for k, v in row.items() if k not in ("epoch", "seconds")}, epoch + 1
            )
            _write_history(outdir, history)
            log.info(
                "epoch %d: %s",
                epoch + 1,
                ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"),
            )
            ckpt.save(
                int(state.step),
                state,
                metrics=metrics_row,
                extra={
                    "epoch": epoch + 1,
                    "batch": 0,
                    "history": history,
                    "partial_loss": [0.0, 0],
                },
            )

    ckpt.wait()
    keep = ckpt.best_step() if monitor else ckpt.latest_step()
    if keep is not None and keep != int(state.step):
        state, _ = ckpt.restore(state, keep)
    ckpt.close()
    save_model(outdir, state)
    if val is None:
        return None
    probs, unc, attention = predictor(
        state,
        val,
        uq_samples=config.uq_samples if config.uq else 0,
        max_bag_size=config.max_val_bag_size,
        seed=config.seed,
    )
    frame = predictions_frame(val, probs, unc, level)
    write_predictions(outdir, frame)
    write_attention(
        outdir,
        val,
        attention,
        heatmaps=attention_heatmaps,
        slide_paths=slide_paths,
        tile_px=train_dataset.tile_px,
        tile_um=train_dataset.tile_um,
        cmap=cmap,
    )
    return frame


def _validation_metrics(
    config: MILConfig, outputs: np.ndarray, labels: np.ndarray, weights: np.ndarray
) -> dict[str, float]:
    """``valid_loss`` (the training loss on the validation bags) and ``roc_auc``, or for a
    regression loss ``mse{i}`` and ``pearson_r{i}`` per outcome."""
    if config.is_regression:
        loss = float(regression_loss(config.loss, outputs, labels))
        return {"valid_loss": loss, **regression_metrics(labels, outputs)}
    return {
        "valid_loss": weighted_cross_entropy(outputs, labels, weights),
        "roc_auc": roc_auc(labels, outputs),
    }


def _batch_size(requested: int, num_bags: int, devices: int) -> int:
    """``requested`` bags per step, at most the training bags, a multiple of the devices."""
    size = min(requested, num_bags)
    size = max(devices, size // devices * devices)
    if size != requested:
        log.warning(
            "batch_size %d → %d (%d training bags, %d devices)", requested, size, num_bags, devices
        )
    return size


def _write_history(outdir: Path, history: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    pd.DataFrame(history).to_csv(buffer, index=False)
    write_bytes_atomic(outdir / "history.csv", buffer.getvalue().encode())
