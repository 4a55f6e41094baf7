"""Building blocks shared by the convolutional backbones: layer constructors with one dtype policy,
global pooling, and the `Preprocessing` record an extractor carries.

Images are NHWC. Layers compute in ``dtype`` (bfloat16 on GPU) and keep their parameters in
``param_dtype`` (float32); BatchNorm statistics are reduced in float32 by Flax whatever ``dtype``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

Dtype = Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's convolution init (Kaiming normal, fan out) for the torchvision-layout CNNs.
KAIMING_FAN_OUT = nnx.initializers.variance_scaling(2.0, "fan_out", "normal")


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """What an extractor expects: square ``size`` px RGB scaled to [0, 1], then
    ``(x - mean) / std`` per channel."""

    size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "mean": list(self.mean), "std": list(self.std)}


@dataclasses.dataclass(frozen=True)
class Layers:
    """Constructors for layers with the same dtypes and RNG (used only while building a model).

    ``bn_momentum``/``bn_epsilon`` follow the framework the architecture comes from: torchvision
    (momentum 0.1, i.e. Flax's 0.9; epsilon 1e-5) or Keras (0.99; 1e-3).
    """

    rngs: nnx.Rngs
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    conv_init: Any = KAIMING_FAN_OUT

    def conv(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int = 1,
        *,
        groups: int = 1,
        bias: bool = False,
        padding: str | None = None,
    ) -> nnx.Conv:
        """A ``kernel`` × ``kernel`` convolution; torch's symmetric ``(k-1)//2`` padding unless
        ``padding`` ("SAME" / "VALID") is given."""
        pad: Any = padding if padding is not None else [((kernel - 1) // 2,) * 2] * 2
        return nnx.Conv(
            cin,
            cout,
            (kernel, kernel),
            strides=stride,
            padding=pad,
            feature_group_count=groups,
            use_bias=bias,
            kernel_init=self.conv_init,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            rngs=self.rngs,
        )

    def bn(self, features: int) -> nnx.BatchNorm:
        return nnx.BatchNorm(
            features,
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            rngs=self.rngs,
        )

    def conv_bn(
        self, cin: int, cout: int, kernel: int, stride: int = 1, *, groups: int = 1
    ) -> nnx.List:
        """torchvision's ``Conv2dNormActivation`` (or a ResNet ``downsample``): an ``nnx.List``
        [conv, BatchNorm], whose parameters are named ``<name>.0.*`` / ``<name>.1.*`` as in
        torchvision's ``state_dict``. Apply it with `conv_bn_act`."""
        return nnx.List([self.conv(cin, cout, kernel, stride, groups=groups), self.bn(cout)])

    def linear(self, fin: int, fout: int, *, bias: bool = True) -> nnx.Linear:
        return nnx.Linear(
            fin, fout, use_bias=bias, dtype=self.dtype, param_dtype=self.param_dtype, rngs=self.rngs
        )


def conv_bn_act(
    layer: nnx.List, x: jax.Array, activation: Callable[[jax.Array], jax.Array] | None = None
) -> jax.Array:
    """A `Layers.conv_bn` pair on ``x``, then ``activation`` (None: linear)."""
    conv, bn = layer
    y = bn(conv(x))
    return y if activation is None else activation(y)


POOLINGS = ("avg", "max")


def check_pooling(pooling: str, allowed: Sequence[str] = POOLINGS) -> str:
    if pooling not in allowed:
        raise ValueError(f"pooling must be one of {', '.join(allowed)}, got {pooling!r}")
    return pooling


class Backbone(nnx.Module):
    """Base of the CNN tile backbones (``__call__(x) -> [B, num_features]``): the global
    ``pooling`` and the compute ``dtype`` (inputs are cast to it) that each one keeps."""

    pooling: str
    dtype: Dtype

    def init_backbone(
        self,
        rngs: nnx.Rngs,
        dtype: Dtype,
        param_dtype: Dtype,
        pooling: str,
        **layer_options: Any,
    ) -> Layers:
        """The start of the constructor: keeps ``pooling`` (checked) and ``dtype``; returns the
        `Layers` to build the network with (``layer_options``: the framework's BatchNorm
        settings and conv init)."""
        self.pooling = check_pooling(pooling)
        self.dtype = dtype
        return Layers(rngs, dtype, param_dtype, **layer_options)


def global_pool(x: jax.Array, pooling: str) -> jax.Array:
    """[B, H, W, C] → [B, C] by the mean or the max over the spatial axes."""
    return jnp.mean(x, axis=(1, 2)) if pooling == "avg" else jnp.max(x, axis=(1, 2))


def max_pool(x: jax.Array, window: int, stride: int, padding: Any) -> jax.Array:
    """Max pooling (padding counts as -inf, as in torch and Keras)."""
    return nnx.max_pool(x, (window, window), strides=(stride, stride), padding=padding)


def param_count(module: nnx.Module) -> int:
    """Number of trainable scalars (``nnx.Param``) of ``module``; works on `nnx.eval_shape`
    results, so large models are counted without allocating them."""
    state = nnx.state(module, nnx.Param)
    return sum(int(x.size) for x in jax.tree.leaves(state))
