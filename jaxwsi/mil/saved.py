"""A trained MIL model's folder: ``mil_params.json`` (config with its ``loss``, outcome(s),
categories (None for a regression model's continuous outcomes), input and output shapes, the
bags' `bags_config.json`) and ``model/`` (an orbax checkpoint of the kept
model's parameters and BatchNorm statistics), read back by `load_mil_model`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import optax
from flax import nnx

from jaxwsi.atomic import write_text_atomic
from jaxwsi.mil.config import MILConfig
from jaxwsi.mil.errors import MILConfigError
from jaxwsi.models.registry import get
from jaxwsi.train.checkpoint import Checkpointer
from jaxwsi.train.state import TrainState

MIL_PARAMS = "mil_params.json"
MODEL_DIR = "model"


def build_model(config: MILConfig, num_features: int, num_classes: int) -> nnx.Module:
    """The registered MIL model ``config.model`` with ``config.model_options``, initialized in
    one compiled call (eager initialization compiles every initializer op by op)."""
    factory = get(config.model, "mil")

    def make() -> nnx.Module:
        return factory(
            num_features=num_features,
            num_classes=num_classes,
            rngs=nnx.Rngs(config.seed),
            **config.model_options,
        )

    try:
        graphdef, _ = nnx.split(nnx.eval_shape(make))
    except TypeError as err:
        raise MILConfigError(
            f"MIL model {config.model!r} rejected its options {config.model_options}: {err}"
        ) from err
    return nnx.merge(graphdef, jax.jit(lambda: nnx.split(make())[1])())


def write_params(outdir: Path, params: dict[str, Any]) -> None:
    write_text_atomic(outdir / MIL_PARAMS, json.dumps(params, indent=2, default=str) + "\n")


def read_params(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(model_dir) / MIL_PARAMS
    if not path.is_file():
        raise MILConfigError(f"not a MIL model folder: {path} not found")
    return json.loads(path.read_text())


def save_model(outdir: Path, state: TrainState) -> None:
    """The model's params and non-param state (no optimizer) under ``outdir/model``."""
    with Checkpointer(outdir / MODEL_DIR, async_save=False) as ckpt:
        ckpt.save(0, {"params": state.params, "rest": state.rest})


def load_mil_model(model_dir: str | os.PathLike[str]) -> tuple[nnx.Module, dict[str, Any]]:
    """(model in eval mode, mil_params) of a folder written by `train_mil`."""
    params = read_params(model_dir)
    config = MILConfig.from_dict(params["params"])
    model = build_model(config, params["input_shape"], params["output_shape"])
    state = TrainState.create(model, optax.identity(), config.seed)
    with Checkpointer(Path(model_dir) / MODEL_DIR) as ckpt:
        restored, _ = ckpt.restore({"params": state.params, "rest": state.rest})
    model = nnx.merge(state.graphdef, restored["params"], restored["rest"])
    model.eval()
    return model, params
