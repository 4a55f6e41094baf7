"""ResNet-18/50 in torchvision's layout (v1.5: stride on the 3×3 convolution), and ResNet-50
truncated after layer3 (CLAM's default extractor, 1024-d).

Attribute names mirror torchvision's ``state_dict`` keys (``conv1``, ``bn1``,
``layer2.0.downsample.1``, ...) so `jaxwsi.models.weights` maps a torchvision or timm
``resnet*.tv_in1k`` file onto the parameters by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxwsi.models.layers import (
    Backbone,
    Dtype,
    Layers,
    Preprocessing,
    conv_bn_act,
    global_pool,
    max_pool,
)
from jaxwsi.models.registry import register


class BasicBlock(nnx.Module):
    """Two 3×3 convolutions (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int, mk: Layers):
        cout = width * self.expansion
        self.conv1 = mk.conv(cin, width, 3, stride)
        self.bn1 = mk.bn(width)
        self.conv2 = mk.conv(width, width, 3)
        self.bn2 = mk.bn(cout)
        self.downsample = _downsample(cin, cout, stride, mk)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = nnx.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return nnx.relu(y + _shortcut(self.downsample, x))


class Bottleneck(nnx.Module):
    """1×1 → 3×3 (strided) → 1×1 with 4× expansion (ResNet-50 and deeper)."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int, mk: Layers):
        cout = width * self.expansion
        self.conv1 = mk.conv(cin, width, 1)
        self.bn1 = mk.bn(width)
        self.conv2 = mk.conv(width, width, 3, stride)
        self.bn2 = mk.bn(width)
        self.conv3 = mk.conv(width, cout, 1)
        self.bn3 = mk.bn(cout)
        self.downsample = _downsample(cin, cout, stride, mk)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = nnx.relu(self.bn1(self.conv1(x)))
        y = nnx.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return nnx.relu(y + _shortcut(self.downsample, x))


def _downsample(cin: int, cout: int, stride: int, mk: Layers) -> nnx.List | None:
    """torchvision's ``downsample`` Sequential (1×1 conv, BatchNorm) where the shape changes."""
    if stride == 1 and cin == cout:
        return None
    return mk.conv_bn(cin, cout, 1, stride)


def _shortcut(downsample: nnx.List | None, x: jax.Array) -> jax.Array:
    return x if downsample is None else conv_bn_act(downsample, x)


class ResNet(Backbone):
    """A torchvision ResNet without its classifier: ``__call__(x) -> [B, num_features]``.

    ``stage_sizes`` lists the blocks per stage; fewer than four stages truncates the network
    (``(3, 4, 6)`` is ResNet-50 up to layer3). The classifier ``fc.*`` of a weights file is not
    used (a backbone has no ImageNet head), so `load_weights` skips it.
    """

    weights_layout = "torch"
    preprocessing: Preprocessing | None = None  # set by the extractor factory

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        stage_sizes: Sequence[int],
        *,
        rngs: nnx.Rngs,
        dtype: Dtype = jnp.float32,
        param_dtype: Dtype = jnp.float32,
        pooling: str = "avg",
    ):
        mk = self.init_backbone(rngs, dtype, param_dtype, pooling)
        self.conv1 = mk.conv(3, 64, 7, 2)
        self.bn1 = mk.bn(64)
        cin = 64
        blocks: list[tuple[str | int, ...]] = [("conv1",), ("bn1",)]
        for i, n in enumerate(stage_sizes):
            width = 64 * 2**i
            stage = []
            for j in range(n):
                stage.append(block(cin, width, 2 if (j == 0 and i > 0) else 1, mk))
                cin = width * block.expansion
                blocks.append((f"layer{i + 1}", j))
            setattr(self, f"layer{i + 1}", nnx.List(stage))
        self.num_stages = len(stage_sizes)
        self.num_features: int = cin
        self.block_paths: tuple[tuple[str | int, ...], ...] = tuple(blocks)
        dropped = [f"layer{i + 1}." for i in range(len(stage_sizes), 4)]
        self.unused_weight_prefixes: tuple[str, ...] = (*dropped, "fc.")

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.bn1(self.conv1(x.astype(self.dtype))))
        x = max_pool(x, 3, 2, ((1, 1), (1, 1)))
        for i in range(self.num_stages):
            for blk in getattr(self, f"layer{i + 1}"):
                x = blk(x)
        return global_pool(x, self.pooling)


# The factories take `ResNet`'s keyword options: ``rngs``, ``dtype``, ``param_dtype``, ``pooling``.


@register("resnet18")
def resnet18(**options: Any) -> ResNet:
    """ResNet-18 (torchvision), 512-d features."""
    return ResNet(BasicBlock, (2, 2, 2, 2), **options)


@register("resnet50")
def resnet50(**options: Any) -> ResNet:
    """ResNet-50 (torchvision v1.5), 2048-d features."""
    return ResNet(Bottleneck, (3, 4, 6, 3), **options)


@register("resnet50_trunc", kind="extractor")
def resnet50_trunc(**options: Any) -> ResNet:
    """ResNet-50 up to layer3, average pooled: 1024-d (CLAM's ``resnet50_trunc``, timm
    ``resnet50.tv_in1k`` with ``out_indices=(3,)``). A full ResNet-50 weights file loads into it:
    ``layer4.*`` and ``fc.*`` are skipped."""
    model = ResNet(Bottleneck, (3, 4, 6), **options)
    model.preprocessing = Preprocessing(size=224)
    return model
