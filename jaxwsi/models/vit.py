"""Vision Transformers in timm's layout: ViT-S/16 as a tile backbone, ViT-B/16 and ViT-L/16 as
feature extractors (ViT-L/16 with layer scale is the architecture of UNI).

Attribute names mirror timm's ``state_dict`` keys (``patch_embed.proj``, ``cls_token``,
``pos_embed``, ``blocks.N.{norm1,attn.qkv,attn.proj,ls1,norm2,mlp.fc1,mlp.fc2,ls2}``,
``norm``) so `jaxwsi.models.weights` loads a timm file by name. Inputs of another size than
``img_size`` get bicubically resized position embeddings (timm's ``dynamic_img_size``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxwsi.models.layers import Dtype, Layers, Preprocessing, check_pooling
from jaxwsi.models.registry import register

VIT_POOLINGS = ("cls", "avg")


def resize_pos_embed(pos_embed: jax.Array, grid: tuple[int, int]) -> jax.Array:
    """[1, 1 + g*g, D] position embeddings (class token first) → [1, 1 + gh*gw, D] for a
    ``grid`` of (gh, gw) patches, bicubic and antialiased over the patch grid as timm's
    ``resample_abs_pos_embed`` (JAX's cubic kernel has a = -0.5, torch's -0.75), class token
    kept."""
    cls, patches = pos_embed[:, :1], pos_embed[:, 1:]
    old = int(round(patches.shape[1] ** 0.5))
    if old * old != patches.shape[1]:
        raise ValueError(f"position embeddings of {patches.shape[1]} patches are not a square grid")
    if (old, old) == tuple(grid):
        return pos_embed
    d = patches.shape[-1]
    img = patches.reshape(1, old, old, d).astype(jnp.float32)
    img = jax.image.resize(img, (1, grid[0], grid[1], d), method="bicubic", antialias=True)
    return jnp.concatenate([cls, img.reshape(1, -1, d).astype(pos_embed.dtype)], axis=1)


class PatchEmbed(nnx.Module):
    """Non-overlapping ``patch`` × ``patch`` patches → ``dim`` channels by one strided conv."""

    def __init__(self, patch: int, dim: int, mk: Layers):
        self.patch = patch
        self.proj = mk.conv(3, dim, patch, patch, bias=True, padding="VALID")

    def __call__(self, x: jax.Array) -> jax.Array:
        """[B, H, W, 3] → [B, H // patch, W // patch, dim] (a remainder is cropped)."""
        return self.proj(x)


class Attention(nnx.Module):
    """Multi-head self-attention with one fused qkv projection (timm's ``Attention``)."""

    def __init__(self, dim: int, heads: int, mk: Layers):
        self.heads = heads
        self.qkv = mk.linear(dim, 3 * dim)
        self.proj = mk.linear(dim, dim)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads)
        y = jax.nn.dot_product_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2])
        return self.proj(y.reshape(b, n, d))


class Mlp(nnx.Module):
    def __init__(self, dim: int, hidden: int, mk: Layers):
        self.fc1 = mk.linear(dim, hidden)
        self.fc2 = mk.linear(hidden, dim)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(nnx.gelu(self.fc1(x), approximate=False))


class LayerScale(nnx.Module):
    """Per-channel residual scale (CaiT; timm ``init_values``), as used by UNI."""

    def __init__(self, dim: int, init_value: float, param_dtype: Dtype):
        self.gamma = nnx.Param(jnp.full((dim,), init_value, param_dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        return x * self.gamma[...].astype(x.dtype)


class Block(nnx.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(
        self, dim: int, heads: int, mlp_ratio: float, layer_scale: float | None, mk: Layers
    ):
        def norm() -> nnx.LayerNorm:
            return nnx.LayerNorm(
                dim, epsilon=1e-6, dtype=mk.dtype, param_dtype=mk.param_dtype, rngs=mk.rngs
            )

        self.norm1 = norm()
        self.attn = Attention(dim, heads, mk)
        self.norm2 = norm()
        self.mlp = Mlp(dim, int(dim * mlp_ratio), mk)
        self.ls1 = None if layer_scale is None else LayerScale(dim, layer_scale, mk.param_dtype)
        self.ls2 = None if layer_scale is None else LayerScale(dim, layer_scale, mk.param_dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.attn(self.norm1(x))
        x = x + (self.ls1(y) if self.ls1 is not None else y)
        y = self.mlp(self.norm2(x))
        return x + (self.ls2(y) if self.ls2 is not None else y)


class VisionTransformer(nnx.Module):
    """ViT without a classifier: ``__call__(x) -> [B, dim]``, the normalized class token
    (``pooling="cls"``) or the mean of the normalized patch tokens (``"avg"``)."""

    weights_layout = "torch"
    unused_weight_prefixes: tuple[str, ...] = ("head.", "fc_norm.", "head_drop.")
    preprocessing: Preprocessing | None = None  # set by the extractor factories

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        heads: int,
        rngs: nnx.Rngs,
        dtype: Dtype = jnp.float32,
        param_dtype: Dtype = jnp.float32,
        pooling: str = "cls",
        patch_size: int = 16,
        img_size: int = 224,
        mlp_ratio: float = 4.0,
        layer_scale: float | None = None,
    ):
        self.pooling = check_pooling(pooling, VIT_POOLINGS)
        self.dtype = dtype
        mk = Layers(rngs, dtype, param_dtype, conv_init=nnx.initializers.lecun_normal())
        self.patch_embed = PatchEmbed(patch_size, dim, mk)
        grid = img_size // patch_size
        self.cls_token = nnx.Param(
            1e-6 * jax.random.normal(rngs.params(), (1, 1, dim), param_dtype)
        )
        self.pos_embed = nnx.Param(
            0.02
            * jax.random.truncated_normal(
                rngs.params(), -2, 2, (1, 1 + grid * grid, dim), param_dtype
            )
        )
        self.blocks = nnx.List(
            [Block(dim, heads, mlp_ratio, layer_scale, mk) for _ in range(depth)]
        )
        self.norm = nnx.LayerNorm(
            dim, epsilon=1e-6, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        self.num_features: int = dim
        self.block_paths: tuple[tuple[str | int, ...], ...] = (
            ("patch_embed",),
            ("cls_token",),
            ("pos_embed",),
            *[("blocks", i) for i in range(depth)],
            ("norm",),
        )

    def convert_weight(self, key: str, value: jax.Array, shape: tuple[int, ...]) -> jax.Array:
        """Weights-file hook: position embeddings of another grid are resized to this one."""
        if key == "pos_embed" and value.shape != shape and value.ndim == 3:
            grid = int(round((shape[1] - 1) ** 0.5))
            return resize_pos_embed(jnp.asarray(value), (grid, grid))
        return value

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.patch_embed(x.astype(self.dtype))
        b, gh, gw, d = x.shape
        pos = resize_pos_embed(self.pos_embed[...], (gh, gw)).astype(x.dtype)
        cls = jnp.broadcast_to(self.cls_token[...].astype(x.dtype), (b, 1, d))
        x = jnp.concatenate([cls, x.reshape(b, gh * gw, d)], axis=1) + pos
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return x[:, 0] if self.pooling == "cls" else jnp.mean(x[:, 1:], axis=1)


def _vit(
    dim: int, depth: int, heads: int, preprocessing: bool = False, **kwargs
) -> VisionTransformer:
    model = VisionTransformer(dim=dim, depth=depth, heads=heads, **kwargs)
    if preprocessing:
        model.preprocessing = Preprocessing(size=kwargs.get("img_size", 224))
    return model


@register("vit_s16")
def vit_s16(
    *,
    rngs: nnx.Rngs,
    dtype: Dtype = jnp.float32,
    param_dtype: Dtype = jnp.float32,
    pooling: str = "cls",
    **options: Any,
) -> VisionTransformer:
    """ViT-S/16 (384-d, 12 blocks, 6 heads). Options: ``img_size`` (224), ``layer_scale``."""
    return _vit(
        384, 12, 6, rngs=rngs, dtype=dtype, param_dtype=param_dtype, pooling=pooling, **options
    )


@register("vit_b16", kind="extractor")
def vit_b16(
    *,
    rngs: nnx.Rngs,
    dtype: Dtype = jnp.float32,
    param_dtype: Dtype = jnp.float32,
    pooling: str = "cls",
    **options: Any,
) -> VisionTransformer:
    """ViT-B/16 (768-d, 12 blocks, 12 heads; timm ``vit_base_patch16_224``), ImageNet
    preprocessing at 224 px."""
    return _vit(
        768,
        12,
        12,
        preprocessing=True,
        rngs=rngs,
        dtype=dtype,
        param_dtype=param_dtype,
        pooling=pooling,
        **options,
    )


@register("vit_l16", kind="extractor")
def vit_l16(
    *,
    rngs: nnx.Rngs,
    dtype: Dtype = jnp.float32,
    param_dtype: Dtype = jnp.float32,
    pooling: str = "cls",
    layer_scale: float | None = 1e-5,
    **options: Any,
) -> VisionTransformer:
    """ViT-L/16 (1024-d, 24 blocks, 16 heads) with layer scale: UNI's architecture (timm
    ``vit_large_patch16_224(init_values=1e-5)``); ``layer_scale=None`` gives plain ViT-L/16.
    ImageNet preprocessing at 224 px."""
    return _vit(
        1024,
        24,
        16,
        preprocessing=True,
        rngs=rngs,
        dtype=dtype,
        param_dtype=param_dtype,
        pooling=pooling,
        layer_scale=layer_scale,
        **options,
    )
