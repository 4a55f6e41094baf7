"""Segmentation losses and metrics on the logits of every output head.

A head's logits ``(N, *spatial, K)`` become class probabilities by softmax (K >= 2) or, for a
single channel, by sigmoid as the foreground of ``[1 - p, p]``. The target is a class index per
voxel and ``weight`` a per-voxel weight: the cost map or ROI mask (0 = ignored), already 0 where
the label equals ``ignore_index`` (`jaxwsi.segment.data.class_targets`). Every loss is a
*weighted* reduction, so ignored voxels count for nothing and cost-map values scale each
voxel's share:

- ``bce``: cross-entropy, ``Σ w·(−log p[target]) / Σ w`` (binary for K = 2; EPySeg's name).
- ``aux``: the Allen Segmenter's name for the same cost-map-weighted cross-entropy summed over
  the heads; here every loss is summed over the heads with ``loss_weight``, so ``aux`` = ``bce``.
- ``jaccard``: ``1 − mean_k (I_k + s) / (U_k + s)`` over the foreground classes k ≥ 1, with
  ``I_k = Σ w·p_k·t_k`` and ``U_k = Σ w·(p_k + t_k) − I_k`` (soft IoU; sums over the batch).
- ``dice``: ``1 − mean_k (2 I_k + s) / (Σ w·p_k + Σ w·t_k + s)``.
- ``bce_jaccard``: ``bce + jaccard`` (segmentation_models' ``bce_jaccard_loss``).
- ``mse`` / ``mae``: ``Σ w·mean_k (p_k − t_k)^2 / Σ w`` (absolute value for mae), t one-hot.

``s = 1e-5`` as in segmentation_models. Unlike the Allen code (which divides by the voxel count),
weighted means divide by ``Σ w``, so a patch with half its voxels ignored is not down-weighted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

SMOOTH = 1e-5
EPS = 1e-8


def log_probs(logits: jax.Array) -> jax.Array:
    """Log class probabilities (..., K): log-softmax, or for one channel the log-sigmoid pair
    ``[log(1 − p), log p]``."""
    if logits.shape[-1] == 1:
        return jnp.concatenate([jax.nn.log_sigmoid(-logits), jax.nn.log_sigmoid(logits)], -1)
    return jax.nn.log_softmax(logits, axis=-1)


def foreground(logits: jax.Array) -> jax.Array:
    """Foreground probability (..., ): 1 − p(background)."""
    return 1.0 - jnp.exp(log_probs(logits)[..., 0])


def _weighted_mean(values: jax.Array, weight: jax.Array) -> jax.Array:
    return jnp.sum(values * weight) / jnp.maximum(jnp.sum(weight), EPS)


def _overlaps(
    logits: jax.Array, target: jax.Array, weight: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per foreground class: (Σ w·p·t, Σ w·p, Σ w·t)."""
    logp = log_probs(logits)
    p = jnp.exp(logp)[..., 1:]
    t = jax.nn.one_hot(target, logp.shape[-1], dtype=p.dtype)[..., 1:]
    w = weight[..., None]
    axes = tuple(range(p.ndim - 1))
    return jnp.sum(w * p * t, axes), jnp.sum(w * p, axes), jnp.sum(w * t, axes)


def bce(logits: jax.Array, target: jax.Array, weight: jax.Array) -> jax.Array:
    logp = log_probs(logits)
    nll = -jnp.take_along_axis(logp, target[..., None], axis=-1)[..., 0]
    return _weighted_mean(nll, weight)


def jaccard(logits: jax.Array, target: jax.Array, weight: jax.Array) -> jax.Array:
    inter, p, t = _overlaps(logits, target, weight)
    return 1.0 - jnp.mean((inter + SMOOTH) / (p + t - inter + SMOOTH))


def dice(logits: jax.Array, target: jax.Array, weight: jax.Array) -> jax.Array:
    inter, p, t = _overlaps(logits, target, weight)
    return 1.0 - jnp.mean((2.0 * inter + SMOOTH) / (p + t + SMOOTH))


def bce_jaccard(logits: jax.Array, target: jax.Array, weight: jax.Array) -> jax.Array:
    return bce(logits, target, weight) + jaccard(logits, target, weight)


def _regression(power: int) -> Callable[[jax.Array, jax.Array, jax.Array], jax.Array]:
    def loss(logits: jax.Array, target: jax.Array, weight: jax.Array) -> jax.Array:
        logp = log_probs(logits)
        t = jax.nn.one_hot(target, logp.shape[-1], dtype=logp.dtype)
        err = jnp.abs(jnp.exp(logp) - t) ** power
        return _weighted_mean(jnp.mean(err, axis=-1), weight)

    return loss


LOSSES: dict[str, Callable[[jax.Array, jax.Array, jax.Array], jax.Array]] = {
    "bce": bce,
    "aux": bce,
    "jaccard": jaccard,
    "dice": dice,
    "bce_jaccard": bce_jaccard,
    "mse": _regression(2),
    "mae": _regression(1),
}


def heads_loss(
    name: str,
    outputs: Sequence[jax.Array],
    target: jax.Array,
    weight: jax.Array,
    loss_weight: Sequence[float],
) -> jax.Array:
    """``Σ_i loss_weight[i] · loss(outputs[i])``: every head predicts the same target."""
    fn = LOSSES[name]
    return sum(
        (w * fn(out, target, weight) for w, out in zip(loss_weight, outputs, strict=True)),
        start=jnp.zeros((), jnp.float32),
    )


def metrics(logits: jax.Array, target: jax.Array, weight: jax.Array) -> dict[str, jax.Array]:
    """Hard foreground metrics at p > 0.5 over the voxels with weight > 0: iou, dice, precision,
    recall, accuracy (target class ≥ 1 is foreground)."""
    pred = foreground(logits) > 0.5
    truth = target > 0
    valid = weight > 0
    tp = jnp.sum(pred & truth & valid)
    fp = jnp.sum(pred & ~truth & valid)
    fn = jnp.sum(~pred & truth & valid)
    tn = jnp.sum(~pred & ~truth & valid)
    div = lambda a, b: a / jnp.maximum(b, 1)  # noqa: E731
    return {
        "iou": div(tp, tp + fp + fn),
        "dice": div(2 * tp, 2 * tp + fp + fn),
        "precision": div(tp, tp + fp),
        "recall": div(tp, tp + fn),
        "accuracy": div(tp + tn, tp + tn + fp + fn),
    }


METRICS = ("iou", "dice", "precision", "recall", "accuracy")
