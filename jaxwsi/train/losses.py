"""Loss functions by Slideflow's names (its TensorFlow and PyTorch spellings), in JAX.

Every loss is ``fn(outputs, labels, events) -> scalar`` on one outcome's head: ``outputs``
float32 [B, n] (logits for classification, values for regression, the log-risk [B, 1] for
survival), ``labels`` [B] (class indices, targets, or survival times) and ``events`` [B]
(1 = event observed, 0 = censored; survival only, None otherwise). Means over the batch; the
jitted step computes them on the global batch, so 1 and 8 devices give the same loss.

Survival is a Cox proportional-hazards model: the negative partial log-likelihood with
Breslow's handling of ties (every subject still at risk at an event time, tied ones included,
is in its risk set), averaged over the events of the batch.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

Loss = Callable[[jax.Array, jax.Array, jax.Array | None], jax.Array]


def cross_entropy(
    outputs: jax.Array, labels: jax.Array, events: jax.Array | None = None
) -> jax.Array:
    """Softmax cross-entropy with integer class labels."""
    del events
    return optax.softmax_cross_entropy_with_integer_labels(outputs, labels.astype(jnp.int32)).mean()


def _value(outputs: jax.Array) -> jax.Array:
    return outputs[:, 0]


def mean_squared_error(
    outputs: jax.Array, labels: jax.Array, events: jax.Array | None = None
) -> jax.Array:
    del events
    return jnp.mean((_value(outputs) - labels) ** 2)


def mean_absolute_error(
    outputs: jax.Array, labels: jax.Array, events: jax.Array | None = None
) -> jax.Array:
    del events
    return jnp.mean(jnp.abs(_value(outputs) - labels))


def mean_absolute_percentage_error(
    outputs: jax.Array, labels: jax.Array, events: jax.Array | None = None
) -> jax.Array:
    """Keras' MAPE: 100 · |y - ŷ| / max(|y|, ε)."""
    del events
    return 100.0 * jnp.mean(jnp.abs(labels - _value(outputs)) / jnp.maximum(jnp.abs(labels), 1e-7))


def mean_squared_logarithmic_error(
    outputs: jax.Array, labels: jax.Array, events: jax.Array | None = None
) -> jax.Array:
    del events
    log = lambda x: jnp.log1p(jnp.maximum(x, 0.0))  # noqa: E731 - Keras clips at 0
    return jnp.mean((log(_value(outputs)) - log(labels)) ** 2)


def huber(outputs: jax.Array, labels: jax.Array, events: jax.Array | None = None) -> jax.Array:
    """Huber loss with δ = 1 (= PyTorch's SmoothL1 with β = 1)."""
    del events
    return optax.huber_loss(_value(outputs), labels, delta=1.0).mean()


def logcosh(outputs: jax.Array, labels: jax.Array, events: jax.Array | None = None) -> jax.Array:
    del events
    return optax.log_cosh(_value(outputs), labels).mean()


def cox_partial_likelihood(
    outputs: jax.Array, times: jax.Array, events: jax.Array | None
) -> jax.Array:
    """Cox negative partial log-likelihood (Breslow ties) per event; 0 without events.

    ``-Σ_{i: event} [r_i - log Σ_{j: t_j >= t_i} exp(r_j)] / #events`` for log-risks ``r``.
    """
    if events is None:
        raise ValueError("the Cox loss needs the event indicator (the trainer's event_header)")
    risk = _value(outputs).astype(jnp.float32)
    at_risk = times[None, :] >= times[:, None]  # [i, j]: j is at risk at t_i
    log_risk_set = jax.nn.logsumexp(jnp.where(at_risk, risk[None, :], -jnp.inf), axis=1)
    observed = events.astype(jnp.float32)
    total = jnp.sum(observed * (risk - log_risk_set))
    return -total / jnp.maximum(jnp.sum(observed), 1.0)


ClassificationLossDict: dict[str, Loss] = {
    "sparse_categorical_crossentropy": cross_entropy,
    "CrossEntropy": cross_entropy,
}

RegressionLossDict: dict[str, Loss] = {
    "mean_squared_error": mean_squared_error,
    "MSE": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "MAE": mean_absolute_error,
    "L1": mean_absolute_error,
    "mean_absolute_percentage_error": mean_absolute_percentage_error,
    "mean_squared_logarithmic_error": mean_squared_logarithmic_error,
    "huber": huber,
    "SmoothL1": huber,
    "logcosh": logcosh,
}
LinearLossDict = RegressionLossDict  # Slideflow's name before 3.0

# Slideflow's TF name for its Cox model; "NLL" is what its PyTorch backend maps to survival.
SurvivalLossDict: dict[str, Loss] = {
    "negative_log_likelihood": cox_partial_likelihood,
    "NLL": cox_partial_likelihood,
}

AllLossDict: dict[str, Loss] = {
    **ClassificationLossDict,
    **RegressionLossDict,
    **SurvivalLossDict,
}
