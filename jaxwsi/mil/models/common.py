"""Pieces every MIL model shares: the call convention, masked softmax and masked top-k.

A MIL model (registry kind ``"mil"``) is built as ``factory(*, num_features, num_classes, rngs,
**options)`` and called as ``model(bags [B, N, D], mask [B, N], *, rngs=None) -> dict`` with

- ``logits``: [B, num_classes] bag logits;
- ``attention``: [B, N] per-instance scores (attention weights, or instance probabilities for
  models without attention), 0 at padded positions, so heatmaps work for every model;
- optional extras (e.g. CLAM's instance logits) that the model's own ``instance_loss`` reads.

``mask`` is True for real tiles; padded tiles never influence the outputs of real ones, so a
padded bag gives the same prediction as the unpadded bag.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Added to the scores of padded tiles: large enough to zero them in a softmax, finite so an
# all-padding bag (batch filler) gives uniform weights instead of NaN.
_MASKED = -1e30


def masked_softmax(scores: jax.Array, mask: jax.Array, axis: int = 1) -> jax.Array:
    """Softmax of ``scores`` over ``axis`` (the instances) where ``mask``; 0 where not."""
    scores = jnp.where(mask, scores.astype(jnp.float32), _MASKED)
    return jnp.where(mask, jax.nn.softmax(scores, axis=axis), 0.0)


def masked_top_k(scores: jax.Array, mask: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """Indices [B, k] of the ``k`` highest ``scores`` [B, N] among real tiles and whether each
    pick is a real tile (a bag of fewer than ``k`` tiles pads its picks)."""
    k = min(k, scores.shape[1])
    values, indices = jax.lax.top_k(jnp.where(mask, scores, -jnp.inf), k)
    return indices, jnp.isfinite(values)


def gather_instances(h: jax.Array, indices: jax.Array) -> jax.Array:
    """``h`` [B, N, D] at ``indices`` [B, k] → [B, k, D]."""
    return jnp.take_along_axis(h, indices[..., None], axis=1)
