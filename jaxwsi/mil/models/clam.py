"""CLAM (Lu et al. 2021, mahmoodlab/CLAM ``model_clam.py``) and CLAM's ``MIL_fc`` baseline.

``clam_sb``: ``Linear(D, 512) + ReLU + Dropout`` → gated attention ``Linear(512, 256)`` (tanh ×
sigmoid) → ``Linear(256, 1)``; softmax over the real tiles; attention-pooled ``Linear(512, C)``.
``clam_mb``: one attention branch and one ``Linear(512, 1)`` bag classifier per class.
Both have one ``Linear(512, 2)`` instance classifier per class for the instance clustering loss:
the ``k_sample`` most and least attended tiles of the true class's branch are pseudo-labelled 1
and 0 (with ``subtyping``, the most attended tiles of the other classes' branches are labelled 0
too); the training loss is ``bag_weight · bag loss + (1 − bag_weight) · instance loss``.
``mil_fc``: a tile classifier; the bag takes the logits of its top-scoring tile.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxwsi.mil.models.common import gather_instances, masked_softmax, masked_top_k
from jaxwsi.models.registry import register

SIZES = {"small": (512, 256), "big": (512, 384)}


class GatedAttention(nnx.Module):
    """CLAM's ``Attn_Net_Gated``: tanh(Linear(L, D)) × sigmoid(Linear(L, D)) → Linear(D, n)."""

    def __init__(self, dim: int, hidden: int, branches: int, dropout: float, rngs: nnx.Rngs):
        self.a = nnx.Linear(dim, hidden, rngs=rngs)
        self.b = nnx.Linear(dim, hidden, rngs=rngs)
        self.c = nnx.Linear(hidden, branches, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, h: jax.Array, rngs: nnx.Rngs | None) -> jax.Array:
        a = self.dropout(jnp.tanh(self.a(h)), rngs=rngs)
        b = self.dropout(nnx.sigmoid(self.b(h)), rngs=rngs)
        return self.c(a * b)  # [B, N, branches]


class CLAM(nnx.Module):
    """CLAM single-branch (``multi_branch=False``) or multi-branch; see the module docstring."""

    classification_only = True  # the instance loss needs class labels (`jaxwsi.mil.steps`)

    def __init__(
        self,
        num_features: int,
        num_classes: int,
        *,
        rngs: nnx.Rngs,
        multi_branch: bool = False,
        size: str = "small",
        dropout: float = 0.0,
        k_sample: int = 8,
        bag_weight: float = 0.7,
        subtyping: bool = False,
    ):
        if size not in SIZES:
            raise ValueError(f"CLAM size must be one of {sorted(SIZES)}, got {size!r}")
        if not 0.0 <= bag_weight <= 1.0:
            raise ValueError(f"bag_weight must be in [0, 1], got {bag_weight}")
        if k_sample < 1:
            raise ValueError(f"k_sample must be >= 1, got {k_sample}")
        dim, hidden = SIZES[size]
        self.fc = nnx.Linear(num_features, dim, rngs=rngs)
        self.fc_dropout = nnx.Dropout(dropout, rngs=rngs)
        branches = num_classes if multi_branch else 1
        self.attention = GatedAttention(dim, hidden, branches, dropout, rngs)
        if multi_branch:
            self.classifiers = nnx.List([nnx.Linear(dim, 1, rngs=rngs) for _ in range(num_classes)])
        else:
            self.classifiers = nnx.List([nnx.Linear(dim, num_classes, rngs=rngs)])
        self.instance_classifiers = nnx.List(
            [nnx.Linear(dim, 2, rngs=rngs) for _ in range(num_classes)]
        )
        self.multi_branch = multi_branch
        self.num_classes = num_classes
        self.k_sample = k_sample
        self.bag_weight = bag_weight
        self.subtyping = subtyping

    def __call__(
        self, bags: jax.Array, mask: jax.Array, *, rngs: nnx.Rngs | None = None
    ) -> dict[str, jax.Array]:
        h = self.fc_dropout(nnx.relu(self.fc(bags)), rngs=rngs)  # [B, N, 512]
        weights = masked_softmax(self.attention(h, rngs), mask[..., None])  # [B, N, branches]
        pooled = jnp.einsum("bnk,bnd->bkd", weights, h)
        if self.multi_branch:
            logits = jnp.concatenate(
                [clf(pooled[:, c]) for c, clf in enumerate(self.classifiers)], axis=-1
            )
            predicted = jnp.argmax(logits, axis=-1)
            attention = jnp.take_along_axis(weights, predicted[:, None, None], axis=2)[..., 0]
        else:
            logits = self.classifiers[0](pooled[:, 0])
            attention = weights[..., 0]
        # Instance logits of every class's classifier on the top-k and bottom-k tiles of that
        # class's attention branch: [B, C, 2k, 2], valid [B, C, 2k].
        inst_logits, inst_valid = [], []
        for c, clf in enumerate(self.instance_classifiers):
            branch = weights[..., c if self.multi_branch else 0]
            top, top_ok = masked_top_k(branch, mask, self.k_sample)
            bottom, bottom_ok = masked_top_k(-branch, mask, self.k_sample)
            picks = jnp.concatenate([top, bottom], axis=1)
            inst_logits.append(clf(gather_instances(h, picks)))
            inst_valid.append(jnp.concatenate([top_ok, bottom_ok], axis=1))
        return {
            "logits": logits,
            "attention": attention,
            "instance_logits": jnp.stack(inst_logits, axis=1),
            "instance_valid": jnp.stack(inst_valid, axis=1),
        }

    def instance_loss(self, outputs: dict[str, jax.Array], labels: jax.Array) -> jax.Array:
        """CLAM's instance clustering loss (cross-entropy), averaged over the bags."""
        logits, valid = outputs["instance_logits"], outputs["instance_valid"]
        k = logits.shape[2] // 2
        in_class = jax.nn.one_hot(labels, self.num_classes, dtype=bool)[:, :, None]  # [B, C, 1]
        positive = jnp.arange(2 * k) < k  # top-k picks
        targets = jnp.where(in_class & positive, 1, 0)  # [B, C, 2k]
        # In-class branch: top-k → 1, bottom-k → 0; other branches (subtyping): top-k → 0.
        used = valid & (in_class | (positive & self.subtyping))
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        per_branch = jnp.sum(ce * used, axis=2) / jnp.maximum(jnp.sum(used, axis=2), 1)
        total = jnp.sum(per_branch, axis=1)
        if self.subtyping:
            total = total / self.num_classes
        return jnp.mean(total)


class MILFC(nnx.Module):
    """CLAM's ``MIL_fc`` / ``MIL_fc_mc``: tile logits; the bag is its top tile (by the positive
    class's probability for two classes, by the highest probability of any class otherwise)."""

    classification_only = True  # the top tile is picked by class probability

    def __init__(
        self, num_features: int, num_classes: int, *, rngs: nnx.Rngs, dropout: float = 0.0
    ):
        self.fc = nnx.Linear(num_features, 512, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.classifier = nnx.Linear(512, num_classes, rngs=rngs)
        self.num_classes = num_classes

    def __call__(
        self, bags: jax.Array, mask: jax.Array, *, rngs: nnx.Rngs | None = None
    ) -> dict[str, jax.Array]:
        h = self.dropout(nnx.relu(self.fc(bags)), rngs=rngs)
        tile_logits = self.classifier(h)  # [B, N, C]
        probs = jax.nn.softmax(tile_logits.astype(jnp.float32), axis=-1)
        score = probs[..., 1] if self.num_classes == 2 else jnp.max(probs, axis=-1)
        top, _ = masked_top_k(score, mask, 1)
        logits = gather_instances(tile_logits, top)[:, 0]
        return {"logits": logits, "attention": jnp.where(mask, score, 0.0)}


@register("clam_sb", kind="mil")
def clam_sb(*, num_features: int, num_classes: int, rngs: nnx.Rngs, **options: Any):
    """CLAM single-branch (k_sample 8, bag_weight 0.7, gated attention, size "small")."""
    return CLAM(num_features, num_classes, rngs=rngs, multi_branch=False, **options)


@register("clam_mb", kind="mil")
def clam_mb(*, num_features: int, num_classes: int, rngs: nnx.Rngs, **options: Any):
    """CLAM multi-branch: one attention branch and bag classifier per class."""
    return CLAM(num_features, num_classes, rngs=rngs, multi_branch=True, **options)


@register("mil_fc", kind="mil")
def mil_fc(*, num_features: int, num_classes: int, rngs: nnx.Rngs, **options: Any):
    """CLAM's MIL_fc (top-1 tile) baseline."""
    return MILFC(num_features, num_classes, rngs=rngs, **options)
