"""`FeatureExtractor`: a tile model as a jit-compiled, data-parallel images → features function.

Any of: a registered extractor name (``resnet50_trunc``, ``vit_b16``, ``vit_l16``, built with a
local ``.safetensors`` weights file by `jaxwsi.models.build_extractor`), the folder of a trained
jaxwsi tile model (`jaxwsi.train.load_trainer`: its pooled features with its own tile size,
scaling and stain normalizer), a `TileModel`, or any ``nnx.Module`` mapping images to
``[B, D]`` with a ``preprocessing`` attribute. The extractor's preprocessing (resize to its input
size, scale to [0, 1], mean/std) runs on the device inside the compiled function; an optional
stain normalizer runs on the host before it (jaxwsi's native kernels).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxwsi.models import Preprocessing, TileModel, build_extractor
from jaxwsi.models.weights import resolve_pretrain
from jaxwsi.train.mesh import batch_sharding, data_mesh, replicate, replicated

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclasses.dataclass
class FeatureExtractor:
    """A model plus what `bags_config.json` records about it; call ``embed(images)``."""

    name: str
    model: nnx.Module
    preprocessing: Preprocessing
    num_features: int
    weights: Path | None = None
    dtype: str = "float32"
    normalizer: Any = None  # a method name or a fitted StainNormalizer
    _embed: Any = dataclasses.field(default=None, repr=False)
    _normalize: Any = dataclasses.field(default=None, repr=False)

    def config(self) -> dict[str, Any]:
        return {
            "extractor": self.name,
            "weights": None if self.weights is None else str(self.weights),
            "weights_sha256": None if self.weights is None else file_sha256(self.weights),
            "preprocessing": self.preprocessing.to_dict(),
            "normalizer": getattr(self.normalizer, "method", self.normalizer),
            "dtype": self.dtype,
            "num_features": self.num_features,
        }

    def embed(self, images: np.ndarray) -> jax.Array:
        """uint8 [B, H, W, 3] (B a multiple of the device count) → float32 [B, D] on the
        devices, sharded; asynchronous (call ``np.asarray`` to wait). The stain normalizer, if
        any, runs here on the host first."""
        if self._embed is None:
            self._embed = _compile(self)
        if self.normalizer is not None:
            if self._normalize is None:
                from jaxwsi.pipeline import Preprocessor

                self._normalize = Preprocessor(normalizer=self.normalizer, standardize=False)
            images = self._normalize.images(images)
        return self._embed(images)


def feature_extractor(
    extractor: str | nnx.Module | FeatureExtractor,
    *,
    weights: str | os.PathLike[str] | None = None,
    preprocessing: Preprocessing | None = None,
    dtype: str = "float32",
    normalizer: Any = None,
) -> FeatureExtractor:
    """Resolve ``extractor`` (see the module docstring); ``weights`` for a registered name."""
    if isinstance(extractor, FeatureExtractor):
        return extractor
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    path = None
    if isinstance(extractor, str | os.PathLike) and Path(extractor).is_dir():
        from jaxwsi.train.trainer import load_trainer

        trainer = load_trainer(extractor)
        model = trainer.state.model()  # type: ignore[union-attr]
        model.eval()
        name = str(extractor)
        # the tile trainer's standardization: x / 127.5 - 1
        preprocessing = preprocessing or Preprocessing(trainer.hp.tile_px, (0.5,) * 3, (0.5,) * 3)
        normalizer = normalizer or trainer.normalizer
    elif isinstance(extractor, str):
        path = resolve_pretrain(weights)
        model = build_extractor(extractor, weights=path, dtype=_DTYPES[dtype])
        name = extractor
    else:
        model, name = extractor, type(extractor).__name__
        model.eval()
    pre = preprocessing or getattr(model, "preprocessing", None)
    if not isinstance(pre, Preprocessing):
        raise ValueError(
            f"extractor {name}: pass preprocessing=jaxwsi.models.Preprocessing(size=..., "
            "mean=..., std=...) (the model has no preprocessing attribute)"
        )
    # A TileModel's num_features is its heads' input width; its features are the backbone's.
    source: Any = model.backbone if isinstance(model, TileModel) else model
    num_features = int(source.num_features)
    return FeatureExtractor(name, model, pre, num_features, path, dtype, normalizer)


def _compile(fx: FeatureExtractor) -> Any:
    mesh = data_mesh(jax.local_devices())
    graphdef, state = nnx.split(fx.model)
    state = replicate(mesh, state)
    pre = fx.preprocessing
    mean = jnp.asarray(pre.mean, jnp.float32)
    std = jnp.asarray(pre.std, jnp.float32)
    dtype = _DTYPES[fx.dtype]

    def embed(state: nnx.State, images: jax.Array) -> jax.Array:
        model = nnx.merge(graphdef, state)
        x = images.astype(jnp.float32) / 255.0
        b, h, w, c = x.shape
        if (h, w) != (pre.size, pre.size):
            x = jax.image.resize(x, (b, pre.size, pre.size, c), "linear", antialias=True)
        x = ((x - mean) / std).astype(dtype)
        features = model.features(x) if isinstance(model, TileModel) else model(x)
        return features.astype(jnp.float32)

    jitted = jax.jit(
        embed,
        in_shardings=(replicated(mesh), batch_sharding(mesh)),
        out_shardings=batch_sharding(mesh),
    )
    sharding = batch_sharding(mesh)
    return lambda images: jitted(state, jax.device_put(images, sharding))


def devices_multiple(batch_size: int) -> int:
    """``batch_size`` rounded up to a multiple of the local device count."""
    n = jax.local_device_count()
    return -(-batch_size // n) * n
