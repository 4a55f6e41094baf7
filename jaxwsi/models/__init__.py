"""Flax NNX architectures and the registry that makes any `nnx.Module` factory trainable by name.

Tile backbones (kind "tile"): xception, resnet18, resnet50, efficientnet_b0, mobilenet_v2,
vit_s16. Feature extractors (kind "extractor"): resnet50_trunc, vit_b16, vit_l16. A backbone
factory is ``factory(*, rngs, dtype, param_dtype, pooling, **options) -> nnx.Module`` whose
module returns pooled features [B, num_features]; `build_tile_model` puts Slideflow's head on it.
"""

from jaxwsi.models.extractor import build_extractor
from jaxwsi.models.layers import Preprocessing, param_count
from jaxwsi.models.registry import KINDS, ModelKind, get, names, register
from jaxwsi.models.tile_model import (
    TileModel,
    backbone_layers,
    build_tile_model,
    head_filter,
    kernel_filter,
    param_mask,
    trainable_filter,
)
from jaxwsi.models.weights import (
    WeightsError,
    build_with_weights,
    load_state_dict,
    load_weights,
    resolve_pretrain,
)

__all__ = [
    "KINDS",
    "ModelKind",
    "Preprocessing",
    "TileModel",
    "WeightsError",
    "backbone_layers",
    "build_extractor",
    "build_tile_model",
    "build_with_weights",
    "get",
    "head_filter",
    "kernel_filter",
    "load_state_dict",
    "load_weights",
    "names",
    "param_count",
    "param_mask",
    "register",
    "resolve_pretrain",
    "trainable_filter",
]
