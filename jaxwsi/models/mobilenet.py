"""MobileNetV2 (Sandler et al. 2018) in torchvision's layout: a 3×3 stem, seventeen inverted
residual blocks with linear bottlenecks (ReLU6) and a 1×1 convolution to 1280 channels.

Attributes mirror torchvision's ``state_dict`` keys (``features.5.conv.1.0``, ...): each
``Conv2dNormActivation`` is an ``nnx.List`` [conv, BatchNorm], so torchvision files load by name.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxwsi.models.layers import Backbone, Dtype, Layers, conv_bn_act, global_pool
from jaxwsi.models.registry import register

# (expansion t, channels c, repeats n, stride s) as in the paper's Table 2.
V2_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class InvertedResidual(nnx.Module):
    """``conv`` = [1×1 expansion (when t > 1), 3×3 depthwise, linear 1×1 projection conv, its
    BatchNorm]; identity shortcut when stride 1 keeps the width."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, mk: Layers):
        hidden = cin * expand
        layers: list[Any] = [mk.conv_bn(cin, hidden, 1)] if expand != 1 else []
        layers += [
            mk.conv_bn(hidden, hidden, 3, stride, groups=hidden),
            mk.conv(hidden, cout, 1),
            mk.bn(cout),
        ]
        self.conv = nnx.List(layers)
        self.residual = stride == 1 and cin == cout

    def __call__(self, x: jax.Array) -> jax.Array:
        *activated, project, project_bn = self.conv
        y = x
        for layer in activated:
            y = conv_bn_act(layer, y, nnx.relu6)
        y = project_bn(project(y))
        return y + x if self.residual else y


class MobileNetV2(Backbone):
    """MobileNetV2 (width 1.0) without its classifier: ``__call__(x) -> [B, 1280]``.
    ``features`` = [stem, 17 inverted residuals, head conv], as torchvision; its
    ``classifier.*`` is not used."""

    weights_layout = "torch"
    unused_weight_prefixes: tuple[str, ...] = ("classifier.",)

    def __init__(
        self,
        *,
        rngs: nnx.Rngs,
        dtype: Dtype = jnp.float32,
        param_dtype: Dtype = jnp.float32,
        pooling: str = "avg",
    ):
        mk = self.init_backbone(rngs, dtype, param_dtype, pooling)
        features: list[Any] = [mk.conv_bn(3, 32, 3, 2)]
        cin = 32
        for t, c, n, s in V2_SETTINGS:
            for j in range(n):
                features.append(InvertedResidual(cin, c, s if j == 0 else 1, t, mk))
                cin = c
        features.append(mk.conv_bn(cin, 1280, 1))
        self.features = nnx.List(features)
        self.num_features: int = 1280
        self.block_paths: tuple[tuple[str | int, ...], ...] = tuple(
            ("features", i) for i in range(len(features))
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        stem, *blocks, head = self.features
        x = conv_bn_act(stem, x.astype(self.dtype), nnx.relu6)
        for block in blocks:
            x = block(x)
        return global_pool(conv_bn_act(head, x, nnx.relu6), self.pooling)


@register("mobilenet_v2")
def mobilenet_v2(**options: Any) -> MobileNetV2:
    """MobileNetV2, 1280-d features; ``options`` are `MobileNetV2`'s (``rngs``, ``dtype``,
    ``param_dtype``, ``pooling``)."""
    return MobileNetV2(**options)
