"""Optimizers by name (Slideflow's set) and learning-rate schedules, as optax transformations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import jax
import optax

Schedule: TypeAlias = float | optax.Schedule

# Slideflow's optimizer names → optax constructors taking (learning_rate, **options).
OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "adam": optax.adam,
    "adamw": optax.adamw,
    "sgd": optax.sgd,
    "rmsprop": optax.rmsprop,
    "adagrad": optax.adagrad,
    "adadelta": optax.adadelta,
    "adamax": optax.adamax,
    "nadam": optax.nadam,
}


def make_optimizer(
    name: str, learning_rate: Schedule, **options: Any
) -> optax.GradientTransformation:
    """The optax optimizer ``name`` (case-insensitive) with ``learning_rate`` and its options
    (e.g. ``momentum=0.9`` for sgd, ``weight_decay`` for adamw)."""
    key = name.lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[key](learning_rate, **options)


def learning_rate_schedule(
    learning_rate: float, *, decay: float = 0.0, decay_steps: int = 100_000
) -> Schedule:
    """Slideflow's schedule: a constant rate, or multiplied by ``decay`` every ``decay_steps``
    steps (staircase exponential decay) when ``0 < decay < 1``. A ``decay`` of 0 or 1 means none."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"learning_rate_decay must be in [0, 1], got {decay}")
    if decay in (0.0, 1.0):
        return learning_rate
    if decay_steps < 1:
        raise ValueError(f"learning_rate_decay_steps must be >= 1, got {decay_steps}")
    return optax.exponential_decay(
        learning_rate, transition_steps=decay_steps, decay_rate=decay, staircase=True
    )


def masked_penalty(
    l1: float, l2: float, mask: Callable[[Any], Any] | Any | None = None
) -> optax.GradientTransformation:
    """Add the gradients of ``l1·|w| + l2·w²`` to the updates, only where ``mask`` is True
    (a pytree of bools like the params, or a function of the params: e.g. kernels only, no
    BatchNorm or biases). Chain it *before* the optimizer (classic coupled regularization)."""
    if l1 < 0 or l2 < 0:
        raise ValueError(f"regularization weights must be >= 0, got l1={l1}, l2={l2}")

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        if params is None:
            raise ValueError("masked_penalty needs the params (pass them to tx.update)")
        penalty = jax.tree.map(
            lambda g, w: g + l1 * jax.numpy.sign(w) + 2.0 * l2 * w, updates, params
        )
        return penalty, state

    transform = optax.GradientTransformation(lambda params: optax.EmptyState(), update)
    return transform if mask is None else optax.masked(transform, mask)


def frozen_except(tx: optax.GradientTransformation, trainable: Any) -> optax.GradientTransformation:
    """``tx`` on the leaves where ``trainable`` (a pytree of bools like the params, or a function
    of the params) is True; zero updates elsewhere. For ``trainable_layers`` and head-only
    ``toplayer_epochs``."""

    def labels(params: Any) -> Any:
        mask = trainable(params) if callable(trainable) else trainable
        return jax.tree.map(lambda m: "train" if m else "frozen", mask)

    return optax.partition({"train": tx, "frozen": optax.set_to_zero()}, labels)
