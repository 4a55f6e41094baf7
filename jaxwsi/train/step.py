"""The data-parallel training and evaluation steps: pure functions, compiled once with `jax.jit`.

A trainer supplies the model-specific part as a loss function on a merged NNX model::

    def loss_fn(model, batch, rng):            # -> (scalar loss, dict of scalar metrics)
        logits = model(batch["image"], rngs=nnx.Rngs(dropout=rng))
        return cross_entropy(logits, batch["label"]), {"accuracy": ...}

and `make_train_step` turns it into ``step(state, batch) -> (state, metrics)`` over the mesh:
state replicated, batch sharded ``P("data")``, gradients all-reduced by XLA. Plain `jax.jit`
over split state rather than `nnx.jit`, which walks the object graph in Python every call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax
from flax import nnx
from jax.sharding import Mesh

from jaxwsi.train.mesh import batch_sharding, replicated
from jaxwsi.train.state import TrainState

LossFn = Callable[[nnx.Module, Any, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]
TrainStep = Callable[[TrainState, Any], tuple[TrainState, dict[str, jax.Array]]]


def train_step(loss_fn: LossFn, state: TrainState, batch: Any) -> tuple[TrainState, dict]:
    """One optimization step: gradients of ``loss_fn`` w.r.t. the params, one optax update."""
    rng = state.step_key()

    def loss_of(params: nnx.State, rest: nnx.State) -> tuple[jax.Array, tuple[dict, nnx.State]]:
        model = nnx.merge(state.graphdef, params, rest, copy=True)  # Variables of this trace
        loss, metrics = loss_fn(model, batch, rng)
        _, _, rest = nnx.split(model, nnx.Param, ...)  # BatchNorm statistics, RNG counters
        return loss, (metrics, rest)

    # `rest` is an argument (not closed over) so its Variables live in the gradient's trace.
    grad_fn = jax.value_and_grad(loss_of, has_aux=True)
    (loss, (metrics, rest)), grads = grad_fn(state.params, state.rest)
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(params=params, rest=rest, opt_state=opt_state, step=state.step + 1)
    return new_state, {"loss": loss, **metrics}


def make_train_step(loss_fn: LossFn, mesh: Mesh, *, donate: bool = True) -> TrainStep:
    """`train_step` with ``loss_fn`` bound, compiled for ``mesh`` (state in, state out).

    ``donate`` reuses the input state's buffers for the output (the caller must not touch the
    old state afterwards)."""

    def step(state: TrainState, batch: Any) -> tuple[TrainState, dict]:
        return train_step(loss_fn, state, batch)

    return jax.jit(
        step,
        in_shardings=(replicated(mesh), batch_sharding(mesh)),
        out_shardings=(replicated(mesh), replicated(mesh)),
        donate_argnums=(0,) if donate else (),
    )


def make_eval_step(fn: Callable[..., Any], mesh: Mesh, *, rng: bool = False) -> Callable[..., Any]:
    """``fn(model, batch) -> outputs`` compiled for ``mesh``: ``step(state, batch)``.

    The model is in eval mode (BatchNorm running averages, no dropout) unless ``rng`` is True:
    then the step takes a third argument, a key, and ``fn(model, batch, key)`` runs in train
    mode for Monte-Carlo dropout. Outputs keep the batch sharding of their leading axis.
    """

    def evaluate(state: TrainState, batch: Any, *key: jax.Array) -> Any:
        model = state.model()
        if rng:
            return fn(model, batch, *key)
        model.eval()
        return fn(model, batch)

    in_shardings: tuple[Any, ...] = (replicated(mesh), batch_sharding(mesh))
    if rng:
        in_shardings += (replicated(mesh),)
    return jax.jit(evaluate, in_shardings=in_shardings, out_shardings=batch_sharding(mesh))
