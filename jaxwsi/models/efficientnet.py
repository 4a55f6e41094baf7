"""EfficientNet-B0 (Tan & Le 2019) in torchvision's layout: a 3×3 stem, seven stages of MBConv
blocks (expansion, depthwise convolution, squeeze-and-excitation, projection) and a 1×1 head
convolution to 1280 channels. Stochastic depth (torchvision trains with 0.2) is not implemented.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxwsi.models.layers import Dtype, Layers, check_pooling, global_pool
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
    """Inverted residual block with squeeze-and-excitation; identity shortcut when the shape
    is kept."""

    def __init__(self, expand: int, kernel: int, stride: int, cin: int, cout: int, mk: Layers):
        hidden = cin * expand
        self.expand_conv = mk.conv(cin, hidden, 1) if expand != 1 else None
        self.expand_bn = mk.bn(hidden) if expand != 1 else None
        self.dw_conv = mk.conv(hidden, hidden, kernel, stride, groups=hidden)
        self.dw_bn = mk.bn(hidden)
        self.se = SqueezeExcitation(hidden, max(1, cin // 4), mk)
        self.project_conv = mk.conv(hidden, cout, 1)
        self.project_bn = mk.bn(cout)
        self.residual = stride == 1 and cin == cout

    def __call__(self, x: jax.Array) -> jax.Array:
        y = x
        if self.expand_conv is not None and self.expand_bn is not None:
            y = nnx.silu(self.expand_bn(self.expand_conv(y)))
        y = nnx.silu(self.dw_bn(self.dw_conv(y)))
        y = self.project_bn(self.project_conv(self.se(y)))
        return y + x if self.residual else y


class EfficientNet(nnx.Module):
    """EfficientNet without its classifier: ``__call__(x) -> [B, 1280]``."""

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
        mk = Layers(rngs, dtype, param_dtype, bn_momentum=0.99, bn_epsilon=1e-3)
        self.stem_conv = mk.conv(3, 32, 3, 2)
        self.stem_bn = mk.bn(32)
        blocks = []
        for expand, kernel, stride, cin, cout, n in B0_STAGES:
            for j in range(n):
                blocks.append(
                    MBConv(
                        expand, kernel, stride if j == 0 else 1, cin if j == 0 else cout, cout, mk
                    )
                )
        self.blocks = nnx.List(blocks)
        self.head_conv = mk.conv(B0_STAGES[-1][4], 1280, 1)
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
        x = nnx.silu(self.stem_bn(self.stem_conv(x.astype(self.dtype))))
        for block in self.blocks:
            x = block(x)
        x = nnx.silu(self.head_bn(self.head_conv(x)))
        return global_pool(x, self.pooling)


@register("efficientnet_b0")
def efficientnet_b0(
    *,
    rngs: nnx.Rngs,
    dtype: Dtype = jnp.float32,
    param_dtype: Dtype = jnp.float32,
    pooling: str = "avg",
) -> EfficientNet:
    """EfficientNet-B0, 1280-d features."""
    return EfficientNet(rngs=rngs, dtype=dtype, param_dtype=param_dtype, pooling=pooling)
