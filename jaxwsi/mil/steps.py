"""The MIL loss and prediction functions the shared jitted steps run (`jaxwsi.train.step`).

Loss: class-weighted cross-entropy of the bag logits (``Σ w_y · CE / Σ w_y``, as torch's
weighted ``CrossEntropyLoss``); a model with an ``instance_loss`` (CLAM) adds it as
``bag_weight · bag loss + (1 − bag_weight) · instance loss``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx


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


def predict_fn(model: nnx.Module, batch: dict) -> dict[str, jax.Array]:
    """Eval-mode bag probabilities and per-tile attention."""
    out = model(batch["bags"], batch["mask"])
    return {
        "probs": jax.nn.softmax(out["logits"].astype(jnp.float32)),
        "attention": out["attention"],
    }


def mc_predict_fn(model: nnx.Module, batch: dict, key: jax.Array) -> dict[str, jax.Array]:
    """One Monte-Carlo dropout sample (BatchNorm on running averages, dropout on)."""
    model.set_attributes(deterministic=False, use_running_average=True, raise_if_not_found=False)
    out = model(batch["bags"], batch["mask"], rngs=nnx.Rngs(dropout=key))
    return {
        "probs": jax.nn.softmax(out["logits"].astype(jnp.float32)),
        "attention": out["attention"],
    }


def weighted_cross_entropy(probs: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """The training loss on host predictions (validation loss)."""
    p = np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)
    w = weights[labels]
    return float(np.sum(-w * np.log(p)) / np.sum(w))
