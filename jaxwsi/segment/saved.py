"""A trained segmentation model on disk, and prediction with it.

``train`` exports the chosen weights (best or last, ``load_at_end``) to ``RUN/model/``: an orbax
checkpoint of the model's params and BatchNorm statistics, with the whole configuration (model,
sizes, normalization, prediction settings) in its JSON extras. `load_model` rebuilds the model
from that configuration, so ``jaxwsi segment predict RUN image.tif`` needs nothing else.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx

from jaxwsi.segment.config import SegmentConfig, config_from_dict
from jaxwsi.segment.losses import foreground
from jaxwsi.segment.normalize import normalize
from jaxwsi.segment.sizes import stride
from jaxwsi.segment.tiling import sliding_window
from jaxwsi.train.checkpoint import Checkpointer, CheckpointError
from jaxwsi.train.mesh import data_mesh, shard_batch
from jaxwsi.train.state import TrainState
from jaxwsi.train.step import make_eval_step

MODEL_FOLDER = "model"


def build_model(config: SegmentConfig, seed: int | None = None) -> nnx.Module:
    """The configured network with fresh weights (seeded by ``config.seed`` by default)."""
    from jaxwsi.models.registry import get

    factory = get(config.model.name, kind="segmentation")
    rngs = nnx.Rngs(config.seed if seed is None else seed)
    return factory(
        nchannel=config.nchannel, nclass=list(config.nclass), rngs=rngs, **config.model.options
    )


def export_model(run_dir: str | Path, config: SegmentConfig, state: TrainState, step: int) -> None:
    """Write ``state``'s weights and ``config`` (sizes resolved) to ``run_dir/model``."""
    with Checkpointer(Path(run_dir) / MODEL_FOLDER, async_save=False) as saver:
        if step not in saver.steps():
            weights = {"params": state.params, "rest": state.rest}
            saver.save(step, weights, extra={"config": config.to_dict(), "step": step})


def _forward(model: nnx.Module, batch: dict) -> jax.Array:
    return foreground(model(batch["image"])[0])[..., None]


@dataclass
class SegmentationModel:
    """A trained model: its configuration and weights, ready for `predict`."""

    config: SegmentConfig
    state: TrainState
    step: int

    @functools.cached_property
    def _predict_step(self) -> Any:
        return make_eval_step(_forward, data_mesh())

    def predict_windows(self, windows: np.ndarray) -> np.ndarray:
        """Foreground probability (n, *size_out, 1) of normalized windows (n, *size_in, C);
        the batch is padded to a multiple of the device count."""
        devices = jax.device_count()
        n = len(windows)
        padded = -(-n // devices) * devices
        if padded != n:
            windows = np.concatenate([windows, np.repeat(windows[-1:], padded - n, axis=0)])
        batch = shard_batch(data_mesh(), {"image": windows})
        return np.asarray(self._predict_step(self.state, batch))[:n]

    def predict(
        self,
        image: np.ndarray,
        *,
        tile: list[int] | None = None,
        overlap: float | None = None,
        blend: str | None = None,
        tta: bool | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Foreground probability (float32, the image's spatial shape) of a raw image (*spatial
        or *spatial + channels), normalized as in training, predicted by sliding windows.
        Arguments left at None take the saved ``prediction`` settings."""
        from jaxwsi.segment.data import with_channels
        from jaxwsi.segment.sizes import size_out_for, traced_size_out

        c = self.config
        p = c.prediction
        dims = len(c.size_in)
        image = with_channels(np.asarray(image), dims, c.nchannel, Path("<image>"))
        size_in = [int(s) for s in tile or p.tile or c.size_in]
        size_out = size_out_for(c.model.name, size_in, **c.model.options)
        if size_out is None:
            size_out = traced_size_out(self.state.model(), size_in, c.nchannel)[0]
        probs = sliding_window(
            self.predict_windows,
            normalize(image, c.normalization),
            size_in,
            size_out,
            overlap=p.overlap if overlap is None else overlap,
            blend=blend or p.blend,
            batch_size=batch_size or p.batch_size,
            stride=stride(c.model.name, dims, **c.model.options),
            tta=p.tta if tta is None else tta,
        )
        return probs[..., 0]


def _template(config: SegmentConfig) -> TrainState:
    model = nnx.eval_shape(lambda: build_model(config))
    return TrainState.create(model, optax.identity(), seed=config.seed)


def load_weights(run_dir: str | Path, like: TrainState) -> tuple[TrainState, dict[str, Any]]:
    """``like`` with the exported params and statistics of ``run_dir`` (a `CheckpointError`
    naming the differences when the architectures differ) and the saved extras."""
    folder = Path(run_dir) / MODEL_FOLDER
    if not folder.is_dir():
        raise CheckpointError(
            f"{run_dir}: no exported model ({MODEL_FOLDER}/ is written when training ends)"
        )
    with Checkpointer(folder, async_save=False) as saver:
        try:
            weights, extra = saver.restore({"params": like.params, "rest": like.rest})
        except ValueError as e:  # same layers, other sizes: orbax says which shape differs
            if isinstance(e, CheckpointError):
                raise
            raise CheckpointError(
                f"{folder} was saved from a different model (same layers, other sizes): {e}"
            ) from None
    return dataclasses.replace(like, params=weights["params"], rest=weights["rest"]), extra


def saved_config(run_dir: str | Path) -> SegmentConfig:
    """The configuration saved with the exported model of ``run_dir``."""
    folder = Path(run_dir) / MODEL_FOLDER
    if not folder.is_dir():
        raise CheckpointError(
            f"{run_dir}: no exported model ({MODEL_FOLDER}/ is written when training ends)"
        )
    with Checkpointer(folder, async_save=False) as saver:
        extra = saver.read_extra()
    return config_from_dict(extra["config"], f"{folder} (saved configuration)")


def load_model(run_dir: str | Path) -> SegmentationModel:
    """The exported model of a training run folder (``checkpoint_dir``)."""
    config = saved_config(run_dir)
    template = _template(config)
    like = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), template)
    state, extra = load_weights(run_dir, like)
    return SegmentationModel(config, state, int(extra["step"]))
