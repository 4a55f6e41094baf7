"""`TileModel`: a registered backbone plus Slideflow's head, and `build_tile_model` by name.

The head follows Slideflow's Keras model: pooled backbone features (``post_convolution``),
clinical inputs concatenated after pooling, dropout, ``hidden_layers`` dense ReLU layers of
``hidden_layer_width``, then one dense output per outcome. (Slideflow's torch wrapper differs:
its hidden blocks are Linear → ReLU → BatchNorm1d → Dropout and it has no dropout without hidden
layers, which leaves ``uq`` nothing to sample.) Outputs are pre-activation (logits
for classification, the value for regression, the log-risk for Cox survival) in float32;
losses and predictions apply softmax where Slideflow's model does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import jax
import jax.numpy as jnp
from flax import nnx

from jaxwsi.models.layers import Dtype
from jaxwsi.models.registry import get
from jaxwsi.models.weights import build_with_weights, resolve_pretrain

log = logging.getLogger(__name__)


class TileModel(nnx.Module):
    """Backbone (or none, with ``drop_images``) → [clinical concat] → dropout → hidden → heads.

    ``__call__(images, clinical=None, *, rngs=None)`` returns one [B, n] array per outcome
    (``num_classes[i]`` columns; 1 for regression and survival). ``rngs`` (e.g.
    ``nnx.Rngs(dropout=key)``) draws the dropout masks in train mode.
    """

    def __init__(
        self,
        backbone: nnx.Module | None,
        *,
        num_classes: Sequence[int] | int,
        num_clinical: int = 0,
        hidden_layers: int = 0,
        hidden_layer_width: int = 500,
        dropout: float = 0.0,
        rngs: nnx.Rngs,
        dtype: Dtype = jnp.float32,
        param_dtype: Dtype = jnp.float32,
    ):
        num_classes = [num_classes] if isinstance(num_classes, int) else list(num_classes)
        if not num_classes or any(int(n) < 1 for n in num_classes):
            raise ValueError(f"num_classes needs one entry >= 1 per outcome, got {num_classes}")
        if num_clinical < 0 or hidden_layers < 0 or hidden_layer_width < 1:
            raise ValueError(
                f"num_clinical ({num_clinical}) and hidden_layers ({hidden_layers}) must be "
                f">= 0 and hidden_layer_width ({hidden_layer_width}) >= 1"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if backbone is None and num_clinical == 0:
            raise ValueError("a model without images (drop_images) needs clinical inputs")
        if backbone is not None and not isinstance(getattr(backbone, "num_features", None), int):
            raise TypeError(
                f"backbone {type(backbone).__name__} has no integer attribute num_features "
                "(the size of the [B, D] features it returns)"
            )
        self.backbone = backbone
        self.num_clinical = num_clinical
        self.num_classes = tuple(int(n) for n in num_classes)
        width = (cast(Any, backbone).num_features if backbone is not None else 0) + num_clinical

        def linear(fin: int, fout: int) -> nnx.Linear:
            return nnx.Linear(fin, fout, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

        self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout > 0 else None
        hidden = []
        for _ in range(hidden_layers):
            hidden.append(linear(width, hidden_layer_width))
            width = hidden_layer_width
        self.hidden = nnx.List(hidden)
        self.heads = nnx.List([linear(width, n) for n in self.num_classes])
        self.num_features: int = width  # input width of the heads

    def mc_dropout(self) -> None:
        """Slideflow's ``uq`` mode: BatchNorm on running averages (eval) but dropout drawing
        masks, so repeated calls with different ``rngs`` sample the prediction."""
        self.set_attributes(deterministic=False, use_running_average=True, raise_if_not_found=False)

    def features(self, images: jax.Array) -> jax.Array:
        """Pooled backbone features [B, D] in float32 (the MIL extractor view of the model)."""
        if self.backbone is None:
            raise ValueError("this model has no image backbone (drop_images=True)")
        return self.backbone(images).astype(jnp.float32)

    def __call__(
        self,
        images: jax.Array | None,
        clinical: jax.Array | None = None,
        *,
        rngs: nnx.Rngs | None = None,
    ) -> list[jax.Array]:
        parts = []
        if self.backbone is not None:
            if images is None:
                raise ValueError("this model needs images (it was built with drop_images=False)")
            parts.append(self.backbone(images))
        if self.num_clinical:
            if clinical is None or clinical.ndim != 2 or clinical.shape[1] != self.num_clinical:
                got = None if clinical is None else tuple(clinical.shape)
                raise ValueError(f"clinical inputs must be [batch, {self.num_clinical}], got {got}")
            parts.append(clinical.astype(parts[0].dtype if parts else clinical.dtype))
        elif clinical is not None:
            raise ValueError("clinical inputs given to a model built with num_clinical=0")
        x = jnp.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
        if self.dropout is not None:
            x = self.dropout(x, rngs=rngs)
        for layer in self.hidden:
            x = nnx.relu(layer(x))
        return [head(x).astype(jnp.float32) for head in self.heads]


def build_tile_model(
    name: str,
    *,
    num_classes: Sequence[int] | int,
    num_clinical: int = 0,
    hidden_layers: int = 0,
    hidden_layer_width: int = 500,
    dropout: float = 0.0,
    pooling: str | None = "avg",
    include_top: bool = True,
    drop_images: bool = False,
    pretrain: str | Path | None = None,
    dtype: Dtype = jnp.float32,
    param_dtype: Dtype = jnp.float32,
    rngs: nnx.Rngs,
    **options: Any,
) -> TileModel:
    """The tile model for registered backbone ``name`` (keywords as `ModelParams` fields).

    ``include_top`` is Slideflow's (Keras ``include_top``, minus the ImageNet classifier): the
    backbone keeps its own top, i.e. global average pooling (the class token for a ViT), and
    ``pooling`` is not used; with ``include_top=False`` ``pooling`` ("avg" / "max"; "cls" / "avg"
    for a ViT) pools the last feature map. ``pretrain`` is a local weights file for the backbone
    (see `jaxwsi.models.weights.load_weights`), None for random initialization; "imagenet"
    raises, since nothing can be downloaded. ``options`` go to the backbone factory.
    """
    backbone = None
    weights = resolve_pretrain(pretrain)  # "imagenet" and missing files fail before building
    if not drop_images:
        factory = get(name, "tile")
        kwargs: dict[str, Any] = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype, **options)
        if not include_top and pooling is not None:
            kwargs["pooling"] = pooling
        elif pooling not in (None, "avg"):
            log.info("include_top=True: %s keeps its own pooling; pooling=%r unused", name, pooling)
        if weights is None:
            backbone = factory(**kwargs)
        else:  # no random initialization of what the file replaces (own RNG: built in a trace)
            backbone = build_with_weights(
                lambda: factory(**{**kwargs, "rngs": nnx.Rngs(0)}), weights
            )
    elif weights is not None:
        log.info("drop_images=True: no backbone, pretrain=%r unused", pretrain)
    return TileModel(
        backbone,
        num_classes=num_classes,
        num_clinical=num_clinical,
        hidden_layers=hidden_layers,
        hidden_layer_width=hidden_layer_width,
        dropout=dropout,
        rngs=rngs,
        dtype=dtype,
        param_dtype=param_dtype,
    )


# --- parameter selections for trainable_layers, toplayer_epochs and regularization -----------


def _path_filter(prefixes: Sequence[tuple[Any, ...]]) -> Any:
    prefixes = [tuple(p) for p in prefixes]

    def matches(path: tuple[Any, ...], _value: Any) -> bool:
        return any(tuple(path[: len(p)]) == p for p in prefixes)

    return matches


def backbone_layers(model: TileModel) -> list[tuple[Any, ...]]:
    """The backbone's layers from input to output, as parameter-path prefixes in ``model``
    (``("backbone", "layer4", 2)``, ...): what ``trainable_layers`` counts from the top. A
    backbone without a ``block_paths`` attribute counts as one layer."""
    if model.backbone is None:
        return []
    blocks = getattr(model.backbone, "block_paths", None) or [()]
    return [("backbone", *p) for p in blocks]


def head_filter(model: TileModel) -> Any:
    """nnx filter of everything outside the backbone: clinical/hidden/output layers (the part
    trained alone during ``toplayer_epochs``)."""
    return nnx.All(nnx.Param, nnx.Not(_path_filter([("backbone",)])))


def trainable_filter(model: TileModel, trainable_layers: int = 0) -> Any:
    """nnx filter of the params Slideflow trains with ``trainable_layers``: 0 = all; N = the
    head plus the last N backbone layers (`backbone_layers`)."""
    if trainable_layers < 0:
        raise ValueError(f"trainable_layers must be >= 0, got {trainable_layers}")
    if trainable_layers == 0:
        return nnx.Param
    layers = backbone_layers(model)
    if trainable_layers > len(layers):
        raise ValueError(
            f"trainable_layers={trainable_layers} but the backbone has {len(layers)} layers"
        )
    top = _path_filter(layers[len(layers) - trainable_layers :])
    return nnx.All(nnx.Param, nnx.Any(nnx.Not(_path_filter([("backbone",)])), top))


def kernel_filter(model: TileModel, part: str = "all") -> Any:
    """nnx filter of weight kernels (no biases, BatchNorm/LayerNorm scales, tokens): where L1/L2
    apply. ``part``: "backbone" (l1/l2), "head" (l1_dense/l2_dense) or "all"."""
    parts = {"all": None, "backbone": True, "head": False}
    if part not in parts:
        raise ValueError(f"part must be one of {', '.join(parts)}, got {part!r}")
    in_backbone = _path_filter([("backbone",)])

    def matches(path: tuple[Any, ...], value: Any) -> bool:
        if not path or path[-1] != "kernel":
            return False
        return parts[part] is None or in_backbone(path, value) == parts[part]

    return nnx.All(nnx.Param, matches)


def param_mask(model: nnx.Module, filter_: Any) -> nnx.State:
    """Bools shaped like ``model``'s ``nnx.Param`` state (as `TrainState` splits it): True where
    ``filter_`` selects the param. A prefix tree of the params, for ``optax.masked``/
    ``optax.partition`` and `jaxwsi.train.optim.frozen_except`."""
    predicate = nnx.filterlib.to_predicate(filter_)
    params = nnx.state(model, nnx.Param)
    return nnx.map_state(lambda path, value: bool(predicate(path, value)), params)
