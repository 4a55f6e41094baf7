"""`TrainState`: everything a training step reads and writes, as one pytree.

An NNX model is split once into its graph definition (static: the Python structure) and its
state: the trainable ``nnx.Param``s and the rest (BatchNorm statistics, RNG counters, ...).
Together with the optimizer state, the step counter and an RNG key this is what the jitted
step carries, what is replicated over the mesh, and what orbax checkpoints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct


@struct.dataclass
class TrainState:
    """Functional training state of one NNX model (see the module docstring)."""

    graphdef: nnx.GraphDef = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)
    params: nnx.State
    rest: nnx.State
    opt_state: optax.OptState
    step: jax.Array
    rng: jax.Array  # raw uint32 key data: checkpointable as a plain array

    if TYPE_CHECKING:  # added by flax.struct.dataclass; declared for type checkers

        def replace(self, **changes: Any) -> TrainState: ...

    @classmethod
    def create(cls, model: nnx.Module, tx: optax.GradientTransformation, seed: int) -> TrainState:
        """Split ``model`` and initialize ``tx`` on its params; ``seed`` seeds the step RNG."""
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        return cls(
            graphdef=graphdef,
            tx=tx,
            params=params,
            rest=rest,
            opt_state=tx.init(params),
            step=jnp.zeros((), jnp.int32),
            rng=jax.random.key_data(jax.random.key(seed)),
        )

    def model(self) -> nnx.Module:
        """The NNX model with this state (a new object; mutating it does not change the state)."""
        return nnx.merge(self.graphdef, self.params, self.rest)

    def step_key(self) -> jax.Array:
        """The RNG key of the current step: a pure function of the seed and the step counter, so
        a resumed run draws the same dropout masks and augmentations as an uninterrupted one."""
        return jax.random.fold_in(jax.random.wrap_key_data(self.rng), self.step)

    def with_tx(self, tx: optax.GradientTransformation) -> TrainState:
        """The same model with a new optimizer (fresh optimizer state), e.g. after
        ``toplayer_epochs`` when every layer becomes trainable."""
        return self.replace(tx=tx, opt_state=tx.init(self.params))


def model_state(model: nnx.Module) -> tuple[nnx.State, nnx.State]:
    """(params, rest) of a model, the way `TrainState` splits them."""
    _, params, rest = nnx.split(model, nnx.Param, ...)
    return params, rest


def count_params(state: TrainState) -> int:
    """Number of trainable scalars."""
    return sum(int(x.size) for x in jax.tree.leaves(state.params))


def abstract(state: TrainState) -> Any:
    """Shapes and dtypes of ``state`` (a template for restoring a checkpoint without data)."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
