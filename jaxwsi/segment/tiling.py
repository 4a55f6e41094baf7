"""Sliding-window prediction over images of any size, with overlap and Gaussian blending.

The image is cut into windows of ``size_in`` whose output windows (``size_out``) overlap by
``overlap``; each window's prediction is weighted by an importance map (a Gaussian with
σ = ``sigma_scale`` · size, nnU-Net's and MONAI's default 0.125, or constant) and the weighted
sum is divided by the summed weights, so tile borders leave no seams. The context margin
``(size_in − size_out) / 2`` of valid-convolution models is mirrored at the image border.
Window starts are multiples of ``stride`` (the model's total downsampling), so a
translation-equivariant model gives exactly the whole-image prediction. Only ``batch_size``
windows are on the device at a time; the image and the sums stay on the host.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

PredictFn = Callable[[np.ndarray], np.ndarray]  # (n, *size_in, C) → (n, *size_out, K)


def importance_map(
    size: Sequence[int], blend: str = "gaussian", sigma_scale: float = 0.125
) -> np.ndarray:
    """Weights of one output window: a separable Gaussian peaking at 1 in the centre (never 0:
    clipped at 1e-3 so border voxels of the image still get a value), or ones."""
    if blend == "constant":
        return np.ones(tuple(size), np.float32)
    if blend != "gaussian":
        raise ValueError(f"blend must be 'gaussian' or 'constant', got {blend!r}")
    weights = np.ones((), np.float32)
    for n in size:
        x = np.arange(n, dtype=np.float32) - (n - 1) / 2
        sigma = max(n * sigma_scale, 1e-3)
        weights = np.multiply.outer(weights, np.exp(-0.5 * (x / sigma) ** 2))
    weights = weights / weights.max()
    return np.maximum(weights, 1e-3).astype(np.float32)


def window_starts(length: int, size: int, step: int) -> list[int]:
    """Starts of windows of ``size`` every ``step`` covering ``length`` (the last one may
    reach past the end: the caller pads)."""
    count = max(1, -(-(length - size) // step) + 1)
    return [i * step for i in range(count)]


def _step(size_out: int, overlap: float, stride: int) -> int:
    """Window step: ``size_out · (1 − overlap)`` rounded down to a multiple of ``stride``, but
    never more than ``size_out`` (windows must cover the image, even if not stride-aligned)."""
    step = int(size_out * (1.0 - overlap)) // stride * stride
    return step if step >= 1 else min(stride, size_out)


def sliding_window(
    predict: PredictFn,
    image: np.ndarray,
    size_in: Sequence[int],
    size_out: Sequence[int],
    *,
    overlap: float = 0.25,
    blend: str = "gaussian",
    batch_size: int = 8,
    stride: int | Sequence[int] = 1,
    tta: bool = False,
) -> np.ndarray:
    """Blended prediction (*spatial, K) float32 of ``image`` (*spatial, C), see module docstring.

    ``tta`` predicts every combination of flips of the spatial axes (4 in 2D, 8 in 3D, as
    nnU-Net's mirroring) and averages them after flipping back, so the result is exactly
    equivariant to flips.
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    dims = image.ndim - 1
    if len(size_in) != dims or len(size_out) != dims:
        raise ValueError(f"image {image.shape} is {dims}D with channels, sizes are {size_in}")
    strides = [stride] * dims if isinstance(stride, int) else list(stride)
    spatial = image.shape[:-1]
    margin = [(i - o) // 2 for i, o in zip(size_in, size_out, strict=True)]
    steps = [_step(o, overlap, s) for o, s in zip(size_out, strides, strict=True)]
    starts = [window_starts(d, o, s) for d, o, s in zip(spatial, size_out, steps, strict=True)]
    covered = [st[-1] + o for st, o in zip(starts, size_out, strict=True)]
    pads = [(m, m + c - d) for m, c, d in zip(margin, covered, spatial, strict=True)]
    padded = np.pad(image.astype(np.float32), [*pads, (0, 0)], mode="symmetric")
    weights = importance_map(size_out, blend)
    total: np.ndarray | None = None
    norm = np.zeros(covered, np.float32)
    flips = [
        axes
        for n in range(dims + 1 if tta else 1)
        for axes in itertools.combinations(range(dims), n)
    ]
    corners = list(itertools.product(*starts))
    for first in range(0, len(corners), batch_size):
        chunk = corners[first : first + batch_size]
        windows = np.stack(
            [
                padded[tuple(slice(c, c + s) for c, s in zip(corner, size_in, strict=True))]
                for corner in chunk
            ]
        )
        probs = None
        for axes in flips:
            flipped = np.flip(windows, tuple(a + 1 for a in axes)) if axes else windows
            out = np.asarray(predict(np.ascontiguousarray(flipped)), np.float32)
            out = np.flip(out, tuple(a + 1 for a in axes)) if axes else out
            probs = out if probs is None else probs + out
        assert probs is not None
        probs = (probs / len(flips)).astype(np.float32)
        if total is None:
            total = np.zeros((*covered, probs.shape[-1]), np.float32)
        for corner, p in zip(chunk, probs, strict=True):
            region = tuple(slice(c, c + s) for c, s in zip(corner, size_out, strict=True))
            total[region] += p * weights[..., None]
            norm[region] += weights
    assert total is not None
    crop = tuple(slice(0, d) for d in spatial)
    return total[crop] / norm[crop][..., None]
