"""Augmentation as jitted JAX functions on a batch on the device: flips, quarter turns, blur.

Same letters and probabilities as :mod:`jaxwsi.pipeline.augment`: ``x``, ``y`` flips (p 0.5), ``r``
k·90° (k uniform in 0..3), ``b`` Gaussian blur (p 0.1, σ uniform in 0.5..2.0; scipy's kernel:
radius round(4σ), reflected edges), applied in the order written. JPEG recompression and stain
augmentation stay on the CPU. Each example draws from its own key, ``split(key, B)[b]`` folded with
the letter's position. The JAX draws are not the numpy draws (different generators), but given the
same draws both versions produce the same images (blur within one grey level).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from jaxwsi.pipeline.augment import BLUR_PROBABILITY, BLUR_SIGMA_RANGE, FLIP_PROBABILITY

JAX_LETTERS = "xyrb"
#: Widest blur kernel radius: round(4 σ) for the largest σ.
MAX_BLUR_RADIUS = int(4 * BLUR_SIGMA_RANGE[1] + 0.5)


def check_jax_letters(augment: str) -> str:
    """``augment`` if it only has letters the JAX version runs (x, y, r, b), else ValueError."""
    if not isinstance(augment, str):
        raise TypeError(f"augment must be a string of letters, got {type(augment).__name__}")
    unsupported = sorted(set(augment) - set(JAX_LETTERS))
    if unsupported:
        raise ValueError(
            f"JAX augmentation runs only {JAX_LETTERS!r}, not {unsupported} in {augment!r}; "
            "run JPEG and stain augmentation on the CPU (jaxwsi.pipeline.preprocess)"
        )
    return augment


def _draw_letter(letter: str, key: jax.Array) -> Any:
    if letter == "r":
        return jax.random.randint(key, (), 0, 4)
    if letter == "b":
        apply_key, sigma_key = jax.random.split(key)
        sigma = jax.random.uniform(
            sigma_key, (), minval=BLUR_SIGMA_RANGE[0], maxval=BLUR_SIGMA_RANGE[1]
        )
        return jax.random.uniform(apply_key) < BLUR_PROBABILITY, sigma
    return jax.random.uniform(key) < FLIP_PROBABILITY


def draw_jax(key: jax.Array, batch_size: int, augment: str) -> tuple[Any, ...]:
    """Per-example draws, one entry per letter: bool [B] for x/y, int32 turns [B] for r,
    (bool apply [B], float sigma [B]) for b."""
    keys = jax.random.split(key, batch_size)
    draws = []
    for position, letter in enumerate(check_jax_letters(augment)):
        letter_keys = jax.vmap(lambda k, p=position: jax.random.fold_in(k, p))(keys)
        draws.append(jax.vmap(partial(_draw_letter, letter))(letter_keys))
    return tuple(draws)


def _rotate_one(image: jax.Array, turns: jax.Array) -> jax.Array:
    return jax.lax.switch(turns, [partial(jnp.rot90, k=k, axes=(0, 1)) for k in range(4)], image)


def _blur_axis(images: jax.Array, weights: jax.Array, axis: int) -> jax.Array:
    """Convolve float ``images [B, H, W, C]`` along ``axis`` (1 or 2) with per-image ``weights``."""
    radius = MAX_BLUR_RADIUS
    pad = [(0, 0)] * images.ndim
    pad[axis] = (radius, radius)
    padded = jnp.pad(images, pad, mode="symmetric")
    size = images.shape[axis]
    out = jnp.zeros_like(images)
    for tap in range(2 * radius + 1):
        window = jax.lax.slice_in_dim(padded, tap, tap + size, axis=axis)
        out = out + weights[:, tap, None, None, None] * window
    return out


def gaussian_blur_jax(images: jax.Array, apply: jax.Array, sigma: jax.Array) -> jax.Array:
    """Blur the uint8 images ``[B, H, W, C]`` where ``apply``, each with its own ``sigma``."""
    offsets = jnp.arange(-MAX_BLUR_RADIUS, MAX_BLUR_RADIUS + 1, dtype=jnp.float32)
    radius = jnp.floor(4.0 * sigma + 0.5)[:, None]
    weights = jnp.where(
        jnp.abs(offsets) <= radius, jnp.exp(-0.5 * (offsets / sigma[:, None]) ** 2), 0.0
    )
    weights = weights / weights.sum(axis=1, keepdims=True)
    blurred = _blur_axis(_blur_axis(images.astype(jnp.float32), weights, 1), weights, 2)
    rounded = jnp.clip(jnp.round(blurred), 0, 255).astype(images.dtype)
    return jnp.where(apply[:, None, None, None], rounded, images)


@partial(jax.jit, static_argnames="augment")
def apply_jax(images: jax.Array, augment: str, draws: Sequence[Any]) -> jax.Array:
    """Apply ``draws`` (from draw_jax, or numpy's) to uint8 ``images [B, H, W, C]``, in order."""
    for letter, value in zip(check_jax_letters(augment), draws, strict=True):
        if letter == "x":
            images = jnp.where(value[:, None, None, None], images[:, :, ::-1], images)
        elif letter == "y":
            images = jnp.where(value[:, None, None, None], images[:, ::-1], images)
        elif letter == "r":
            if images.shape[1] != images.shape[2]:
                raise ValueError(f"rotation 'r' needs square images, got shape {images.shape}")
            images = jax.vmap(_rotate_one)(images, jnp.asarray(value, jnp.int32))
        else:
            images = gaussian_blur_jax(images, *value)
    return images


@partial(jax.jit, static_argnames="augment")
def random_augment_jax(images: jax.Array, key: jax.Array, augment: str = JAX_LETTERS) -> jax.Array:
    """Randomly augment each uint8 image of ``images [B, H, W, C]`` with its own key (jitted)."""
    return apply_jax(images, augment, draw_jax(key, images.shape[0], augment))
