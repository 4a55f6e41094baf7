"""MobileNetV2 (Sandler et al. 2018) in torchvision's layout: a 3×3 stem, seventeen inverted
residual blocks with linear bottlenecks (ReLU6) and a 1×1 convolution to 1280 channels."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxwsi.models.layers import Dtype, Layers, check_pooling, global_pool
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
    """1×1 expansion (when t > 1) → 3×3 depthwise → linear 1×1 projection; identity shortcut
    when stride 1 keeps the width."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, mk: Layers):
        hidden = cin * expand
        self.expand_conv = mk.conv(cin, hidden, 1) if expand != 1 else None
        self.expand_bn = mk.bn(hidden) if expand != 1 else None
        self.dw_conv = mk.conv(hidden, hidden, 3, stride, groups=hidden)
        self.dw_bn = mk.bn(hidden)
        self.project_conv = mk.conv(hidden, cout, 1)
        self.project_bn = mk.bn(cout)
        self.residual = stride == 1 and cin == cout

    def __call__(self, x: jax.Array) -> jax.Array:
        y = x
        if self.expand_conv is not None and self.expand_bn is not None:
            y = nnx.relu6(self.expand_bn(self.expand_conv(y)))
        y = nnx.relu6(self.dw_bn(self.dw_conv(y)))
        y = self.project_bn(self.project_conv(y))
        return y + x if self.residual else y


class MobileNetV2(nnx.Module):
    """MobileNetV2 (width 1.0) without its classifier: ``__call__(x) -> [B, 1280]``."""

    weights_layout = None  # attribute names are not torchvision's Sequential indices

    def __init__(
        self,
        *,
        rngs: nnx.Rngs,
        dtype: Dtype = jnp.float32,
        param_dtype: Dtype = jnp.float32,
        pooling: str = "avg",
    ):
        self.pooling = check_pooling(pooling)
        self.dtype = dtype
        mk = Layers(rngs, dtype, param_dtype)
        self.stem_conv = mk.conv(3, 32, 3, 2)
        self.stem_bn = mk.bn(32)
        blocks, cin = [], 32
        for t, c, n, s in V2_SETTINGS:
            for j in range(n):
                blocks.append(InvertedResidual(cin, c, s if j == 0 else 1, t, mk))
                cin = c
        self.blocks = nnx.List(blocks)
        self.head_conv = mk.conv(cin, 1280, 1)
        self.head_bn = mk.bn(1280)
        self.num_features: int = 1280
        self.block_paths: tuple[tuple[str | int, ...], ...] = (
            ("stem_conv",),
            ("stem_bn",),
            *[("blocks", i) for i in range(len(blocks))],
            ("head_conv",),
            ("head_bn",),
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu6(self.stem_bn(self.stem_conv(x.astype(self.dtype))))
        for block in self.blocks:
            x = block(x)
        x = nnx.relu6(self.head_bn(self.head_conv(x)))
        return global_pool(x, self.pooling)


@register("mobilenet_v2")
def mobilenet_v2(
    *,
    rngs: nnx.Rngs,
    dtype: Dtype = jnp.float32,
    param_dtype: Dtype = jnp.float32,
    pooling: str = "avg",
) -> MobileNetV2:
    """MobileNetV2, 1280-d features."""
    return MobileNetV2(rngs=rngs, dtype=dtype, param_dtype=param_dtype, pooling=pooling)
