"""Geometric augmentation (flips, quarter turns) as jitted JAX functions on a batch on the device.

Same letters and probabilities as :mod:`jaxwsi.data.augment` (``x``, ``y`` p 0.5; ``r`` k uniform in
0..3), applied in the order written. Each example draws from its own key: ``split(key, B)[b]``
folded with the letter's position. The JAX draws are not the numpy draws (different generators),
but given the same draws both versions produce identical images.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp

GEOMETRIC_LETTERS = "xyr"


def check_geometric(augment: str) -> str:
    """``augment`` if it only has letters the JAX version runs (x, y, r), else ValueError."""
    if not isinstance(augment, str):
        raise TypeError(f"augment must be a string of letters, got {type(augment).__name__}")
    unsupported = sorted(set(augment) - set(GEOMETRIC_LETTERS))
    if unsupported:
        raise ValueError(
            f"JAX augmentation runs only {GEOMETRIC_LETTERS!r}, not {unsupported} in {augment!r}; "
            "run JPEG, blur and stain augmentation on the CPU (jaxwsi.data.preprocess)"
        )
    return augment


def draw_geometric(key: jax.Array, batch_size: int, augment: str) -> tuple[jax.Array, ...]:
    """Per-example draws, one array [B] per letter: bool flips for x/y, int32 turns for r."""
    keys = jax.random.split(key, batch_size)
    draws = []
    for position, letter in enumerate(check_geometric(augment)):
        letter_keys = jax.vmap(lambda k, p=position: jax.random.fold_in(k, p))(keys)
        if letter == "r":
            draws.append(jax.vmap(lambda k: jax.random.randint(k, (), 0, 4))(letter_keys))
        else:
            draws.append(jax.vmap(lambda k: jax.random.uniform(k) < 0.5)(letter_keys))
    return tuple(draws)


def _rotate_one(image: jax.Array, turns: jax.Array) -> jax.Array:
    return jax.lax.switch(turns, [partial(jnp.rot90, k=k, axes=(0, 1)) for k in range(4)], image)


@partial(jax.jit, static_argnames="augment")
def apply_geometric(images: jax.Array, augment: str, draws: Sequence[jax.Array]) -> jax.Array:
    """Apply flips/turns ``draws`` (from draw_geometric or numpy) to ``images [B, H, W, C]``."""
    for letter, value in zip(check_geometric(augment), draws, strict=True):
        if letter == "x":
            images = jnp.where(value[:, None, None, None], images[:, :, ::-1], images)
        elif letter == "y":
            images = jnp.where(value[:, None, None, None], images[:, ::-1], images)
        else:
            if images.shape[1] != images.shape[2]:
                raise ValueError(f"rotation 'r' needs square images, got shape {images.shape}")
            images = jax.vmap(_rotate_one)(images, jnp.asarray(value, jnp.int32))
    return images


@partial(jax.jit, static_argnames="augment")
def random_geometric(
    images: jax.Array, key: jax.Array, augment: str = GEOMETRIC_LETTERS
) -> jax.Array:
    """Randomly flip/turn each image of ``images [B, H, W, C]`` with its own key (jitted)."""
    return apply_geometric(images, augment, draw_geometric(key, images.shape[0], augment))
