"""Xception (Chollet 2017) in the layout of ``keras.applications.Xception``, Slideflow's default
architecture: an entry flow (two plain convolutions, three strided residual blocks), a middle
flow (eight residual blocks of three separable convolutions at 728 channels) and an exit flow.

Keras' BatchNorm settings (momentum 0.99, epsilon 1e-3) and Glorot-uniform initialization;
"same" paddings as TensorFlow pads them (more at the end when the total is odd).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxwsi.models.layers import Backbone, Dtype, Layers, global_pool, max_pool
from jaxwsi.models.registry import register


class SeparableConv(nnx.Module):
    """Keras ``SeparableConv2D`` without bias: a 3×3 depthwise then a 1×1 pointwise convolution."""

    def __init__(self, cin: int, cout: int, mk: Layers):
        self.depthwise = mk.conv(cin, cin, 3, groups=cin, padding="SAME")
        self.pointwise = mk.conv(cin, cout, 1, padding="SAME")

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.pointwise(self.depthwise(x))


class SepConvBN(nnx.Module):
    """(ReLU →) separable convolution → BatchNorm, the unit every Xception flow repeats."""

    def __init__(self, cin: int, cout: int, mk: Layers, *, relu_first: bool = True):
        self.relu_first = relu_first
        self.conv = SeparableConv(cin, cout, mk)
        self.bn = mk.bn(cout)

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.relu_first:
            x = nnx.relu(x)
        return self.bn(self.conv(x))


class DownBlock(nnx.Module):
    """Two separable units and a strided max pool, added to a strided 1×1 projection."""

    def __init__(self, cin: int, mid: int, cout: int, mk: Layers, *, relu_first: bool = True):
        self.shortcut_conv = mk.conv(cin, cout, 1, 2, padding="SAME")
        self.shortcut_bn = mk.bn(cout)
        self.sep1 = SepConvBN(cin, mid, mk, relu_first=relu_first)
        self.sep2 = SepConvBN(mid, cout, mk)

    def __call__(self, x: jax.Array) -> jax.Array:
        residual = self.shortcut_bn(self.shortcut_conv(x))
        y = max_pool(self.sep2(self.sep1(x)), 3, 2, "SAME")
        return y + residual


class MiddleBlock(nnx.Module):
    """Three separable units at constant width with an identity shortcut."""

    def __init__(self, width: int, mk: Layers):
        self.seps = nnx.List([SepConvBN(width, width, mk) for _ in range(3)])

    def __call__(self, x: jax.Array) -> jax.Array:
        y = x
        for sep in self.seps:
            y = sep(y)
        return y + x


class Xception(Backbone):
    """Xception without its classifier: ``__call__(x) -> [B, 2048]`` (inputs ≥ 71 px in Keras;
    any size from 64 px works here)."""

    weights_layout = None  # Keras layout: no torch state dict maps onto it

    def __init__(
        self,
        *,
        rngs: nnx.Rngs,
        dtype: Dtype = jnp.float32,
        param_dtype: Dtype = jnp.float32,
        pooling: str = "avg",
        middle_blocks: int = 8,
    ):
        mk = self.init_backbone(
            rngs,
            dtype,
            param_dtype,
            pooling,
            bn_momentum=0.99,
            bn_epsilon=1e-3,
            conv_init=nnx.initializers.glorot_uniform(),
        )
        # Entry flow.
        self.conv1 = mk.conv(3, 32, 3, 2, padding="VALID")
        self.bn1 = mk.bn(32)
        self.conv2 = mk.conv(32, 64, 3, padding="VALID")
        self.bn2 = mk.bn(64)
        self.entry = nnx.List(
            [
                DownBlock(64, 128, 128, mk, relu_first=False),
                DownBlock(128, 256, 256, mk),
                DownBlock(256, 728, 728, mk),
            ]
        )
        # Middle flow.
        self.middle = nnx.List([MiddleBlock(728, mk) for _ in range(middle_blocks)])
        # Exit flow.
        self.exit_block = DownBlock(728, 728, 1024, mk)
        self.exit_sep1 = SepConvBN(1024, 1536, mk, relu_first=False)
        self.exit_sep2 = SepConvBN(1536, 2048, mk, relu_first=False)
        self.num_features: int = 2048
        self.block_paths: tuple[tuple[str | int, ...], ...] = (
            ("conv1",),
            ("bn1",),
            ("conv2",),
            ("bn2",),
            *[("entry", i) for i in range(3)],
            *[("middle", i) for i in range(middle_blocks)],
            ("exit_block",),
            ("exit_sep1",),
            ("exit_sep2",),
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.bn1(self.conv1(x.astype(self.dtype))))
        x = nnx.relu(self.bn2(self.conv2(x)))
        for block in self.entry:
            x = block(x)
        for middle in self.middle:
            x = middle(x)
        x = self.exit_block(x)
        x = nnx.relu(self.exit_sep1(x))
        x = nnx.relu(self.exit_sep2(x))
        return global_pool(x, self.pooling)


@register("xception")
def xception(
    *,
    rngs: nnx.Rngs,
    dtype: Dtype = jnp.float32,
    param_dtype: Dtype = jnp.float32,
    pooling: str = "avg",
) -> Xception:
    """Xception (Keras layout), 2048-d features; Slideflow's default model."""
    return Xception(rngs=rngs, dtype=dtype, param_dtype=param_dtype, pooling=pooling)
