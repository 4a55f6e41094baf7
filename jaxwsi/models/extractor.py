"""`build_extractor`: a registered feature extractor (kind "extractor") with its weights file.

With weights, the model is never randomly initialized (`build_with_weights`): a ViT-L/16 is
ready in the time it takes to read the file. Without weights (tests, smoke runs) it is randomly
initialized, with a warning, since random features are of no use for MIL.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax.numpy as jnp
from flax import nnx

from jaxwsi.models.layers import Dtype, Preprocessing
from jaxwsi.models.registry import get
from jaxwsi.models.weights import build_with_weights, resolve_pretrain

log = logging.getLogger(__name__)


def build_extractor(
    name: str,
    *,
    weights: str | os.PathLike[str] | None,
    dtype: Dtype = jnp.float32,
    param_dtype: Dtype = jnp.float32,
    seed: int = 0,
    **options: Any,
) -> nnx.Module:
    """The extractor ``name`` in eval mode, with ``weights`` (a local ``.safetensors`` file in
    timm/torchvision layout) or random weights when None. The module has ``num_features`` and
    ``preprocessing`` (`Preprocessing`: input size, mean/std)."""
    factory = get(name, "extractor")
    path = resolve_pretrain(weights)

    def build() -> nnx.Module:
        return factory(rngs=nnx.Rngs(seed), dtype=dtype, param_dtype=param_dtype, **options)

    if path is None:
        log.warning(
            "extractor %s has random weights (weights=None): its features mean nothing", name
        )
        model = build()
    else:
        model = build_with_weights(build, path)
    if not isinstance(getattr(model, "preprocessing", None), Preprocessing):
        raise TypeError(
            f"extractor {name!r} has no preprocessing attribute (jaxwsi.models.Preprocessing): "
            "set model.preprocessing in its factory"
        )
    model.eval()
    return model
