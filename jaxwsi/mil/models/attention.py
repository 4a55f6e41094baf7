"""Attention MIL (Ilse et al. 2018, as KatherLab's marugoto and Slideflow build it) and its
gated variant (ABMIL with the ``tanh(V h) * sigmoid(U h)`` attention of Ilse et al.).

``attention_mil``: encoder ``Linear(D, 256) + ReLU``; attention ``Linear(256, 128) - tanh -
Linear(128, 1)``; softmax over the real tiles (``/ temperature``); attention-weighted sum of the
embeddings; head ``BatchNorm → Dropout(0.5) → Linear`` (Slideflow's defaults).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxwsi.mil.models.common import masked_softmax
from jaxwsi.models.registry import register


class AttentionMIL(nnx.Module):
    """See the module docstring; ``gated`` switches to the gated attention branch."""

    def __init__(
        self,
        num_features: int,
        num_classes: int,
        *,
        rngs: nnx.Rngs,
        encoder_dim: int = 256,
        attention_dim: int = 128,
        dropout: float = 0.5,
        temperature: float = 1.0,
        gated: bool = False,
    ):
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.encoder = nnx.Linear(num_features, encoder_dim, rngs=rngs)
        self.attention_v = nnx.Linear(encoder_dim, attention_dim, rngs=rngs)
        self.attention_u = nnx.Linear(encoder_dim, attention_dim, rngs=rngs) if gated else None
        self.attention_w = nnx.Linear(attention_dim, 1, rngs=rngs)
        self.norm = nnx.BatchNorm(encoder_dim, momentum=0.9, epsilon=1e-5, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = nnx.Linear(encoder_dim, num_classes, rngs=rngs)
        self.temperature = temperature

    def __call__(
        self, bags: jax.Array, mask: jax.Array, *, rngs: nnx.Rngs | None = None
    ) -> dict[str, jax.Array]:
        h = nnx.relu(self.encoder(bags))  # [B, N, E]
        a = jnp.tanh(self.attention_v(h))
        if self.attention_u is not None:
            a = a * nnx.sigmoid(self.attention_u(h))
        scores = self.attention_w(a)[..., 0] / self.temperature  # [B, N]
        weights = masked_softmax(scores, mask)
        pooled = jnp.einsum("bn,bne->be", weights, h)
        logits = self.head(self.dropout(self.norm(pooled), rngs=rngs))
        return {"logits": logits, "attention": weights}


@register("attention_mil", kind="mil")
def attention_mil(*, num_features: int, num_classes: int, rngs: nnx.Rngs, **options: Any):
    """Slideflow's ``attention_mil`` (marugoto's Attention_MIL)."""
    return AttentionMIL(num_features, num_classes, rngs=rngs, **options)


@register("gated_attention_mil", kind="mil")
def gated_attention_mil(*, num_features: int, num_classes: int, rngs: nnx.Rngs, **options: Any):
    """Gated ABMIL: ``attention_mil`` with the gated attention branch."""
    return AttentionMIL(num_features, num_classes, rngs=rngs, gated=True, **options)
