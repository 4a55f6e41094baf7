"""EfficientNet-B0 (Tan & Le 2019) in torchvision's layout: a 3×3 stem, seven stages of MBConv
blocks (expansion, depthwise convolution, squeeze-and-excitation, projection) and a 1×1 head
convolution to 1280 channels. Stochastic depth (torchvision trains with 0.2) is not implemented.

Attributes mirror torchvision's ``state_dict`` keys (``features.3.1.block.2.fc1``, ...): each
``Conv2dNormActivation`` is an ``nnx.List`` [conv, BatchNorm], so torchvision files load by name.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxwsi.models.layers import Backbone, Dtype, Layers, conv_bn_act, global_pool
from jaxwsi.models.registry import register

# (expand ratio, kernel, stride, channels in, channels out, blocks) per stage of B0.
B0_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)


class SqueezeExcitation(nnx.Module):
    """Channel gates from the pooled features: 1×1 conv → SiLU → 1×1 conv → sigmoid."""

    def __init__(self, channels: int, squeeze: int, mk: Layers):
        self.fc1 = mk.conv(channels, squeeze, 1, bias=True)
        self.fc2 = mk.conv(squeeze, channels, 1, bias=True)

    def __call__(self, x: jax.Array) -> jax.Array:
        s = jnp.mean(x, axis=(1, 2), keepdims=True)
        return x * nnx.sigmoid(self.fc2(nnx.silu(self.fc1(s))))


class MBConv(nnx.Module):
    """Inverted residual block with squeeze-and-excitation: ``block`` = [expand (when the
    ratio is not 1), depthwise, SE, project]; identity shortcut when the shape is kept."""

    def __init__(self, expand: int, kernel: int, stride: int, cin: int, cout: int, mk: Layers):
        hidden = cin * expand
        layers: list[Any] = [mk.conv_bn(cin, hidden, 1)] if expand != 1 else []
        layers += [
            mk.conv_bn(hidden, hidden, kernel, stride, groups=hidden),
            SqueezeExcitation(hidden, max(1, cin // 4), mk),
            mk.conv_bn(hidden, cout, 1),
        ]
        self.block = nnx.List(layers)
        self.residual = stride == 1 and cin == cout

    def __call__(self, x: jax.Array) -> jax.Array:
        *activated, se, project = self.block
        y = x
        for layer in activated:
            y = conv_bn_act(layer, y, nnx.silu)
        y = conv_bn_act(project, se(y))
        return y + x if self.residual else y


class EfficientNet(Backbone):
    """EfficientNet without its classifier: ``__call__(x) -> [B, 1280]``. ``features`` =
    [stem, stage 1..7, head conv], as torchvision; its ``classifier.*`` is not used."""

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
        mk = self.init_backbone(rngs, dtype, param_dtype, pooling)  # BatchNorm2d defaults
        features: list[Any] = [mk.conv_bn(3, 32, 3, 2)]
        blocks: list[tuple[str | int, ...]] = [("features", 0)]
        for s, (expand, kernel, stride, cin, cout, n) in enumerate(B0_STAGES, start=1):
            stage = [
                MBConv(expand, kernel, stride if j == 0 else 1, cin if j == 0 else cout, cout, mk)
                for j in range(n)
            ]
            features.append(nnx.List(stage))
            blocks += [("features", s, j) for j in range(n)]
        features.append(mk.conv_bn(B0_STAGES[-1][4], 1280, 1))
        blocks.append(("features", len(features) - 1))
        self.features = nnx.List(features)
        self.num_features: int = 1280
        self.block_paths: tuple[tuple[str | int, ...], ...] = tuple(blocks)

    def __call__(self, x: jax.Array) -> jax.Array:
        stem, *stages, head = self.features
        x = conv_bn_act(stem, x.astype(self.dtype), nnx.silu)
        for stage in stages:
            for block in stage:
                x = block(x)
        return global_pool(conv_bn_act(head, x, nnx.silu), self.pooling)


@register("efficientnet_b0")
def efficientnet_b0(**options: Any) -> EfficientNet:
    """EfficientNet-B0, 1280-d features; ``options`` are `EfficientNet`'s (``rngs``, ``dtype``,
    ``param_dtype``, ``pooling``)."""
    return EfficientNet(**options)
