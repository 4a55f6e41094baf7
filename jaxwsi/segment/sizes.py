"""Valid patch sizes: which ``size_in`` a model accepts and the ``size_out`` it then produces.

Closed forms for the built-in models (derived layer by layer and checked against the traced
models in the tests), and `traced_size_out` for any model (``jax.eval_shape``: no compute)::

    unet2d        size_out = size_in, every axis divisible by 2**depth
    unet_xy       size_in = [z, 8p+60, 8q+60]          → size_out = [z-28, 8p-28, 8q-28]
    unet_xy_zoom  size_in = [z, k(8p+60), k(8q+60)]    → size_out = [z-32, 8kp-28k-4, ...]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

Size = tuple[int, ...]


def _xy_valid(name: str, options: dict[str, Any]) -> tuple[int, int, int, int, int]:
    """(z_loss, step, offset, out_step, out_offset) of the xy rule ``in = step·p + offset``,
    ``out = out_step·p + out_offset``, for the valid-convolution 3D models."""
    if name == "unet_xy":
        return 28, 8, 60, 8, -28
    k = int(options.get("zoom_ratio", 3))
    return 32, 8 * k, 60 * k, 8 * k, -28 * k - 4


def size_out_for(name: str, size_in: Sequence[int], **options: Any) -> Size | None:
    """``size_out`` of built-in model ``name`` for ``size_in``; None when ``size_in`` is invalid
    or ``name`` is not a built-in (use `traced_size_out` then)."""
    size_in = tuple(int(s) for s in size_in)
    if name == "unet2d":
        depth = int(options.get("depth", 4))
        if len(size_in) != 2 or any(s < 1 or s % 2**depth for s in size_in):
            return None
        return size_in
    if name in ("unet_xy", "unet_xy_zoom"):
        if len(size_in) != 3:
            return None
        z_loss, step, offset, out_step, out_offset = _xy_valid(name, options)
        z, *xy = size_in
        out = [z - z_loss]
        for s in xy:
            p, rem = divmod(s - offset, step)
            if rem or p < 0 or out_step * p + out_offset < 1:
                return None
            out.append(out_step * p + out_offset)
        return tuple(out) if out[0] >= 1 else None
    return None


def valid_sizes(
    name: str, *, max_size: Sequence[int], min_size: Sequence[int] | None = None, **options: Any
) -> list[tuple[Size, Size]]:
    """Every (size_in, size_out) pair of built-in model ``name`` with a cubic/square xy patch,
    ``size_in <= max_size`` and ``size_out >= min_size`` per axis, smallest first. For 3D models
    the z size is the largest that fits ``max_size[0]``."""
    max_size = tuple(int(s) for s in max_size)
    floor = tuple(int(s) for s in (min_size or (1,) * len(max_size)))
    pairs: list[tuple[Size, Size]] = []
    if name == "unet2d":
        unit = 2 ** int(options.get("depth", 4))
        for s in range(unit, min(max_size) + 1, unit):
            pairs.append(((s, s), (s, s)))
    elif name in ("unet_xy", "unet_xy_zoom"):
        z_loss, step, offset, _, _ = _xy_valid(name, options)
        z = max_size[0]
        for s in range(offset, min(max_size[1:]) + 1, step):
            size_in = (z, s, s)
            size_out = size_out_for(name, size_in, **options)
            if size_out is not None:
                pairs.append((size_in, size_out))
    else:
        raise ValueError(f"no size rule for model {name!r}: give size_in and size_out explicitly")
    return [(i, o) for i, o in pairs if all(a >= b for a, b in zip(o, floor, strict=True))]


def nearest_valid(name: str, size_in: Sequence[int], **options: Any) -> list[Size]:
    """A few valid ``size_in`` near ``size_in`` (for error messages); empty for custom models."""
    if name == "unet2d":
        unit = 2 ** int(options.get("depth", 4))
        lo = tuple(max(unit, s // unit * unit) for s in size_in)
        hi = tuple(math.ceil(s / unit) * unit for s in size_in)
        return sorted({lo, hi})
    if name in ("unet_xy", "unet_xy_zoom") and len(size_in) == 3:
        z_loss, step, offset, out_step, out_offset = _xy_valid(name, options)
        p_min = math.ceil((1 - out_offset) / out_step)
        z = max(int(size_in[0]), z_loss + 1)
        out = []
        for s in size_in[1:]:
            p = max(p_min, round((s - offset) / step))
            out.append(step * p + offset)
        return [(z, *out)]
    return []


def traced_size_out(model: nnx.Module, size_in: Sequence[int], nchannel: int) -> list[Size]:
    """Spatial output shape of each head of ``model`` for one patch of ``size_in``, by tracing
    (shapes only); raises what the model raises for a size it cannot take."""
    graphdef, state = nnx.split(model)

    def forward(state: nnx.State, x: jax.Array) -> Any:
        return nnx.merge(graphdef, state)(x)

    x = jax.ShapeDtypeStruct((1, *size_in, nchannel), jnp.float32)
    return [tuple(o.shape[1:-1]) for o in jax.eval_shape(forward, state, x)]


def stride(name: str, dims: int, **options: Any) -> tuple[int, ...]:
    """Total downsampling per axis of a built-in model (1 for custom models): sliding windows
    start at multiples of it, so tiles see the same pooling grid as the whole image."""
    if name == "unet2d":
        return (2 ** int(options.get("depth", 4)),) * dims
    if name == "unet_xy":
        return (1, 8, 8)
    if name == "unet_xy_zoom":
        k = int(options.get("zoom_ratio", 3))
        return (1, 8 * k, 8 * k)
    return (1,) * dims


def auto_candidates(
    name: str, smallest_image: Sequence[int], *, limit: int = 8, **options: Any
) -> list[tuple[Size, Size]]:
    """Valid (size_in, size_out) pairs of built-in ``name`` whose output fits the smallest image,
    ascending, thinned to at most ``limit`` sizes growing geometrically (for ``size_in: auto``)."""
    dims = tuple(int(s) for s in smallest_image)
    if name == "unet2d":
        pairs = valid_sizes(name, max_size=dims, **options)
    elif name in ("unet_xy", "unet_xy_zoom"):
        z_loss = _xy_valid(name, options)[0]
        big = (dims[0] + z_loss, *(d * 8 + 1000 for d in dims[1:]))
        pairs = valid_sizes(name, max_size=big, **options)
    else:
        raise ValueError(f"size_in: auto needs a built-in model, not {name!r}")
    pairs = [(i, o) for i, o in pairs if all(a <= b for a, b in zip(o, dims, strict=True))]
    if len(pairs) <= limit:
        return pairs
    sides = np.array([i[-1] for i, _ in pairs], float)
    targets = np.geomspace(sides[0], sides[-1], limit)
    keep = sorted({int(np.abs(sides - t).argmin()) for t in targets})
    return [pairs[i] for i in keep]
