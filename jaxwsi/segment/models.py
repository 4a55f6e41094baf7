"""The segmentation networks, in Flax NNX, registered as models of kind ``"segmentation"``.

Every segmentation model takes channels-last patches ``(N, *spatial, nchannel)`` and returns a
list of logits, one array ``(N, *size_out, nclass[i])`` per output head (the main head first).

- ``unet2d``: the standard 2D U-Net with same padding (``size_out == size_in``).
- ``unet_xy``: the Allen Cell Structure Segmenter's anisotropic 3D U-Net: valid 3×3×3
  convolutions, max pooling in xy only (z is never downsampled), channels 32→64→128→256 with
  a 512 bottleneck, BatchNorm without scale/shift, and two auxiliary (deep-supervision) heads
  from the ½- and ¼-resolution decoder levels, upsampled and cropped to the main head's grid.
- ``unet_xy_zoom``: the same body on an input max-pooled by ``zoom_ratio`` in xy, upsampled back
  by a transposed convolution and one more decoder block (for objects larger than the body's
  receptive field).

Valid convolutions make ``size_out`` smaller than ``size_in`` (see `jaxwsi.segment.sizes`), so
every output voxel sees its full context and tiles stitch without border artefacts.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jaxwsi.models.registry import register

BN_MOMENTUM = 0.9  # PyTorch's 0.1 in Flax's convention (the reference models are PyTorch)


def center_crop(x: jax.Array, spatial: Sequence[int]) -> jax.Array:
    """``x`` (N, *spatial', C) cropped to ``spatial`` around its centre."""
    starts = [(have - want) // 2 for have, want in zip(x.shape[1:-1], spatial, strict=True)]
    index = tuple(slice(s, s + w) for s, w in zip(starts, spatial, strict=True))
    return x[(slice(None), *index, slice(None))]


class ConvBlock(nnx.Module):
    """Two (convolution → BatchNorm → ReLU) layers."""

    def __init__(
        self,
        cin: int,
        cmid: int,
        cout: int,
        *,
        ndim: int,
        padding: str,
        affine: bool,
        rngs: nnx.Rngs,
    ) -> None:
        kernel = (3,) * ndim
        self.conv1 = nnx.Conv(cin, cmid, kernel, padding=padding, rngs=rngs)
        self.norm1 = nnx.BatchNorm(
            cmid, momentum=BN_MOMENTUM, use_scale=affine, use_bias=affine, rngs=rngs
        )
        self.conv2 = nnx.Conv(cmid, cout, kernel, padding=padding, rngs=rngs)
        self.norm2 = nnx.BatchNorm(
            cout, momentum=BN_MOMENTUM, use_scale=affine, use_bias=affine, rngs=rngs
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.norm1(self.conv1(x)))
        return nnx.relu(self.norm2(self.conv2(x)))


class UNet2D(nnx.Module):
    """2D U-Net, same padding: ``depth`` poolings, ``features·2^i`` channels at level i."""

    def __init__(
        self, nchannel: int, nclass: int, *, depth: int, features: int, rngs: nnx.Rngs
    ) -> None:
        self.depth = depth
        widths = [features * 2**i for i in range(depth + 1)]
        block = functools.partial(ConvBlock, ndim=2, padding="SAME", affine=True, rngs=rngs)
        self.down = nnx.List(
            [block(cin, w, w) for cin, w in zip([nchannel, *widths[:-2]], widths[:-1], strict=True)]
        )
        self.bottom = block(widths[-2], widths[-1], widths[-1])
        self.up = nnx.List(
            [
                nnx.ConvTranspose(w * 2, w, (2, 2), (2, 2), padding="VALID", rngs=rngs)
                for w in reversed(widths[:-1])
            ]
        )
        self.dec = nnx.List([block(w * 2, w, w) for w in reversed(widths[:-1])])
        self.head = nnx.Conv(widths[0], nclass, (1, 1), rngs=rngs)

    def __call__(self, x: jax.Array) -> list[jax.Array]:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = nnx.max_pool(x, (2, 2), strides=(2, 2))
        x = self.bottom(x)
        for up, block, skip in zip(self.up, self.dec, reversed(skips), strict=True):
            x = block(jnp.concatenate([up(x), skip], axis=-1))
        return [self.head(x)]


class UNetXYBody(nnx.Module):
    """The encoder/decoder of ``unet_xy`` (valid 3×3×3 convolutions, xy-only pooling): returns
    the decoder outputs at full, ½ and ¼ xy resolution."""

    def __init__(self, nchannel: int, *, features: int, rngs: nnx.Rngs) -> None:
        f = features
        block = functools.partial(ConvBlock, ndim=3, padding="VALID", affine=False, rngs=rngs)
        self.enc1 = block(nchannel, f, 2 * f)
        self.enc2 = block(2 * f, 2 * f, 4 * f)
        self.enc3 = block(4 * f, 4 * f, 8 * f)
        self.enc4 = block(8 * f, 8 * f, 16 * f)  # bottleneck: 512 at f=32
        xy2 = (1, 2, 2)
        self.up3 = nnx.ConvTranspose(16 * f, 16 * f, xy2, xy2, padding="VALID", rngs=rngs)
        self.up2 = nnx.ConvTranspose(8 * f, 8 * f, xy2, xy2, padding="VALID", rngs=rngs)
        self.up1 = nnx.ConvTranspose(4 * f, 4 * f, xy2, xy2, padding="VALID", rngs=rngs)
        self.dec3 = block(24 * f, 8 * f, 8 * f)
        self.dec2 = block(12 * f, 4 * f, 4 * f)
        self.dec1 = block(6 * f, 2 * f, 2 * f)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        pool = (1, 2, 2)
        down1 = self.enc1(x)
        down2 = self.enc2(nnx.max_pool(down1, pool, strides=pool))
        down3 = self.enc3(nnx.max_pool(down2, pool, strides=pool))
        bottom = self.enc4(nnx.max_pool(down3, pool, strides=pool))
        up = self.up3(bottom)
        quarter = self.dec3(jnp.concatenate([up, center_crop(down3, up.shape[1:-1])], -1))
        up = self.up2(quarter)
        half = self.dec2(jnp.concatenate([up, center_crop(down2, up.shape[1:-1])], -1))
        up = self.up1(half)
        full = self.dec1(jnp.concatenate([up, center_crop(down1, up.shape[1:-1])], -1))
        return full, half, quarter


class AuxHead(nnx.Module):
    """A deep-supervision head: transposed convolution up by ``scale`` in xy, a valid 3×3×3
    convolution and a 1×1×1 convolution (the caller crops to the main head's grid)."""

    def __init__(self, cin: int, nclass: int, *, scale: int, kernel: int, rngs: nnx.Rngs) -> None:
        self.up = nnx.ConvTranspose(
            cin, nclass, (1, kernel, kernel), (1, scale, scale), padding="VALID", rngs=rngs
        )
        self.conv = nnx.Conv(nclass, nclass, (3, 3, 3), padding="VALID", rngs=rngs)
        self.predict = nnx.Conv(nclass, nclass, (1, 1, 1), rngs=rngs)

    def __call__(self, x: jax.Array, spatial: Sequence[int]) -> jax.Array:
        return center_crop(self.predict(self.conv(self.up(x))), spatial)


def _check_heads(name: str, nclass: Sequence[int], heads: int) -> None:
    if len(nclass) != heads:
        raise ValueError(
            f"nclass: {name} has {heads} output head(s), so nclass needs {heads} entries "
            f"(e.g. {[2] * heads}), got {list(nclass)}"
        )


class UNetXY(nnx.Module):
    """``unet_xy``: main head plus auxiliary heads at ½ and ¼ xy resolution."""

    def __init__(
        self, nchannel: int, nclass: Sequence[int], *, features: int, rngs: nnx.Rngs
    ) -> None:
        _check_heads("unet_xy", nclass, 3)
        f = features
        self.body = UNetXYBody(nchannel, features=f, rngs=rngs)
        self.head = nnx.Conv(2 * f, nclass[0], (1, 1, 1), rngs=rngs)
        self.aux_half = AuxHead(4 * f, nclass[1], scale=2, kernel=4, rngs=rngs)
        self.aux_quarter = AuxHead(8 * f, nclass[2], scale=4, kernel=8, rngs=rngs)

    def __call__(self, x: jax.Array) -> list[jax.Array]:
        full, half, quarter = self.body(x)
        main = self.head(full)
        spatial = main.shape[1:-1]
        return [main, self.aux_half(half, spatial), self.aux_quarter(quarter, spatial)]


class UNetXYZoom(nnx.Module):
    """``unet_xy_zoom``: the ``unet_xy`` body on the input max-pooled by ``zoom_ratio`` in xy,
    upsampled back by a transposed convolution and one more decoder block; the auxiliary heads
    are upsampled by 2·zoom and 4·zoom."""

    def __init__(
        self,
        nchannel: int,
        nclass: Sequence[int],
        *,
        zoom_ratio: int,
        features: int,
        rngs: nnx.Rngs,
    ) -> None:
        _check_heads("unet_xy_zoom", nclass, 3)
        if zoom_ratio < 1:
            raise ValueError(f"model.zoom_ratio must be >= 1, got {zoom_ratio}")
        k, f = zoom_ratio, features
        self.zoom = k
        self.body = UNetXYBody(nchannel, features=f, rngs=rngs)
        self.up0 = nnx.ConvTranspose(2 * f, 2 * f, (1, k, k), (1, k, k), padding="VALID", rngs=rngs)
        self.dec0 = ConvBlock(2 * f, 2 * f, 2 * f, ndim=3, padding="VALID", affine=False, rngs=rngs)
        self.head = nnx.Conv(2 * f, nclass[0], (1, 1, 1), rngs=rngs)
        self.aux_half = AuxHead(4 * f, nclass[1], scale=2 * k, kernel=2 * k, rngs=rngs)
        self.aux_quarter = AuxHead(8 * f, nclass[2], scale=4 * k, kernel=4 * k, rngs=rngs)

    def __call__(self, x: jax.Array) -> list[jax.Array]:
        window = (1, self.zoom, self.zoom)
        full, half, quarter = self.body(nnx.max_pool(x, window, strides=window))
        main = self.head(self.dec0(self.up0(full)))
        spatial = main.shape[1:-1]
        return [main, self.aux_half(half, spatial), self.aux_quarter(quarter, spatial)]


@register("unet2d", kind="segmentation")
def unet2d(
    *, nchannel: int, nclass: Sequence[int], rngs: nnx.Rngs, depth: int = 4, features: int = 32
) -> UNet2D:
    """2D U-Net with same padding; ``size_in`` must be divisible by ``2**depth``."""
    _check_heads("unet2d", nclass, 1)
    return UNet2D(nchannel, nclass[0], depth=depth, features=features, rngs=rngs)


@register("unet_xy", kind="segmentation")
def unet_xy(*, nchannel: int, nclass: Sequence[int], rngs: nnx.Rngs, features: int = 32) -> UNetXY:
    """Allen Cell's anisotropic 3D U-Net (``features=32``: 32→64→128→256, 512 bottleneck)."""
    return UNetXY(nchannel, nclass, features=features, rngs=rngs)


@register("unet_xy_zoom", kind="segmentation")
def unet_xy_zoom(
    *,
    nchannel: int,
    nclass: Sequence[int],
    rngs: nnx.Rngs,
    zoom_ratio: int = 3,
    features: int = 32,
) -> UNetXYZoom:
    """``unet_xy`` on an xy-downsampled input (``zoom_ratio`` ≈ object diameter / 150 voxels)."""
    return UNetXYZoom(nchannel, nclass, zoom_ratio=zoom_ratio, features=features, rngs=rngs)
