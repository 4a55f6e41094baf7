"""The MIL loss and prediction functions the shared jitted steps run (`jaxwsi.train.step`).

Classification: class-weighted cross-entropy of the bag logits (``Σ w_y · CE / Σ w_y``, as
torch's weighted ``CrossEntropyLoss``); a model with an ``instance_loss`` (CLAM) adds it as
``bag_weight · bag loss + (1 − bag_weight) · instance loss``; predictions are softmax
probabilities. Regression (`REGRESSION_LOSSES`): the element-wise loss of the raw outputs
[B, K] against the float targets [B, K], averaged over bags and outcomes (torch's
``reduction="mean"``); predictions are the raw outputs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxwsi.mil.config import MILConfig
from jaxwsi.mil.errors import MILConfigError

Elementwise = Callable[[jax.Array, jax.Array], jax.Array]

# (outputs, targets) → loss per element, by `MILConfig.loss` name
REGRESSION_LOSSES: dict[str, Elementwise] = {
    "mse": optax.squared_error,  # (ŷ − y)²
    "mae": lambda outputs, targets: jnp.abs(outputs - targets),
    "huber": functools.partial(optax.huber_loss, delta=1.0),  # torch's HuberLoss(delta=1)
}


def make_loss_fn(weights: np.ndarray) -> Callable[[nnx.Module, Any, jax.Array], Any]:
    """``loss_fn(model, batch, rng) -> (loss, metrics)`` with class ``weights``."""
    class_weights = jnp.asarray(weights, jnp.float32)

    def loss_fn(model: nnx.Module, batch: dict, rng: jax.Array) -> tuple[jax.Array, dict]:
        out = model(batch["bags"], batch["mask"], rngs=nnx.Rngs(dropout=rng))
        ce = optax.softmax_cross_entropy_with_integer_labels(
            out["logits"].astype(jnp.float32), batch["label"]
        )
        w = class_weights[batch["label"]]
        bag_loss = jnp.sum(w * ce) / jnp.sum(w)
        instance_loss = getattr(model, "instance_loss", None)
        if instance_loss is None:
            return bag_loss, {"bag_loss": bag_loss}
        inst = instance_loss(out, batch["label"])
        bag_weight = model.bag_weight  # type: ignore[attr-defined]
        loss = bag_weight * bag_loss + (1 - bag_weight) * inst
        return loss, {"bag_loss": bag_loss, "instance_loss": inst}

    return loss_fn


def regression_loss(loss: str, outputs: Any, targets: Any) -> jax.Array:
    """The mean ``loss`` (a `REGRESSION_LOSSES` name) of ``outputs`` against ``targets``, both
    [B, K]; also used on host predictions for the validation loss."""
    fn = REGRESSION_LOSSES[loss]
    return jnp.mean(fn(jnp.asarray(outputs, jnp.float32), jnp.asarray(targets, jnp.float32)))


def make_regression_loss_fn(loss: str) -> Callable[[nnx.Module, Any, jax.Array], Any]:
    """``loss_fn(model, batch, rng) -> (loss, metrics)`` on float ``label`` [B, K]."""

    def loss_fn(model: nnx.Module, batch: dict, rng: jax.Array) -> tuple[jax.Array, dict]:
        out = model(batch["bags"], batch["mask"], rngs=nnx.Rngs(dropout=rng))
        bag_loss = regression_loss(loss, out["logits"], batch["label"])
        return bag_loss, {"bag_loss": bag_loss}

    return loss_fn


def check_model_fits_loss(model: nnx.Module, config: MILConfig) -> None:
    """Refuse a classification-only model (CLAM's instance loss and ``mil_fc``'s top tile need
    class labels) with a regression loss."""
    if config.is_regression and getattr(model, "classification_only", False):
        raise MILConfigError(
            f"MIL model {config.model!r} is classification-only (it needs class labels), so it "
            f"cannot train with the regression loss {config.loss!r}; use attention_mil, "
            "gated_attention_mil or transmil, or loss='cross_entropy'"
        )


def make_predict_fns(
    regression: bool,
) -> tuple[Callable[..., dict[str, jax.Array]], Callable[..., dict[str, jax.Array]]]:
    """(eval-mode ``predict_fn(model, batch)``, one Monte-Carlo dropout sample
    ``mc_predict_fn(model, batch, key)``): bag ``outputs`` (softmax probabilities, or the raw
    values for ``regression``) and per-tile ``attention``."""

    def outputs(out: dict[str, jax.Array]) -> dict[str, jax.Array]:
        logits = out["logits"].astype(jnp.float32)
        return {
            "outputs": logits if regression else jax.nn.softmax(logits),
            "attention": out["attention"],
        }

    def predict_fn(model: nnx.Module, batch: dict) -> dict[str, jax.Array]:
        return outputs(model(batch["bags"], batch["mask"]))

    def mc_predict_fn(model: nnx.Module, batch: dict, key: jax.Array) -> dict[str, jax.Array]:
        """BatchNorm on running averages, dropout on."""
        model.set_attributes(
            deterministic=False, use_running_average=True, raise_if_not_found=False
        )
        return outputs(model(batch["bags"], batch["mask"], rngs=nnx.Rngs(dropout=key)))

    return predict_fn, mc_predict_fn


def weighted_cross_entropy(probs: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """The training loss on host predictions (validation loss)."""
    p = np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)
    w = weights[labels]
    return float(np.sum(-w * np.log(p)) / np.sum(w))
