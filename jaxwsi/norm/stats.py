"""Per-image statistics over a pixel mask, vectorized over a batch, for numpy and JAX alike.

Arrays are ``[B, N, ...]`` (B images of N pixels) with a boolean mask ``[B, N]``. A fixed shape with
a mask (rather than a ragged selection) is what lets the same code run under ``jax.jit``. Sums over
pixels are matrix products (BLAS in numpy), which are fast and accumulate accurately.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _weighted_sum(weights: Any, values: Any) -> Any:
    """``sum_n weights[b, n] * values[b, n, :]`` → ``[B, C]``."""
    return (weights[:, None, :] @ values)[:, 0, :]


def _refined_mean(values: Any, weights: Any, count: Any) -> Any:
    """Weighted mean over pixels, corrected by a second pass over the residuals (float32-exact)."""
    mean = _weighted_sum(weights, values) / count
    return mean + _weighted_sum(weights, values - mean[:, None, :]) / count


def masked_mean_std(values: Any, mask: Any, xp: Any) -> tuple[Any, Any]:
    """Mean and population std of ``values [B, N, C]`` over masked pixels → ``[B, C]``."""
    weights = mask.astype(values.dtype)
    count = xp.maximum(weights.sum(axis=1), 1.0)[:, None]
    mean = _refined_mean(values, weights, count)
    variance = _weighted_sum(weights, (values - mean[:, None, :]) ** 2) / count
    return mean, xp.sqrt(variance)


def masked_covariance(values: Any, mask: Any, xp: Any) -> Any:
    """Sample covariance ``[B, C, C]`` of ``values [B, N, C]`` over masked pixels."""
    weights = mask.astype(values.dtype)
    count = weights.sum(axis=1)[:, None]
    mean = _refined_mean(values, weights, xp.maximum(count, 1.0))
    centred = (values - mean[:, None, :]) * weights[..., None]
    return (xp.swapaxes(centred, 1, 2) @ centred) / xp.maximum(count - 1.0, 1.0)[..., None]


def masked_percentiles(values: Any, mask: Any, qs: tuple[float, ...], xp: Any) -> Any:
    """Percentiles ``qs`` of ``values [B, N]`` over masked entries, per row → ``[B, len(qs)]``.

    Same result as ``numpy.percentile`` (linear interpolation) on each row's masked entries; nan
    for a row without any. numpy selects in linear time row by row; JAX sorts with masked-out
    entries last (+inf), which jits.
    """
    if xp is np:
        return np.array(
            [
                np.percentile(row[keep], qs) if keep.any() else np.full(len(qs), np.nan)
                for row, keep in zip(values, mask, strict=True)
            ],
            dtype=values.dtype,
        ).reshape(len(values), len(qs))
    ordered = xp.sort(xp.where(mask, values, xp.inf), axis=1)
    count = mask.sum(axis=1)[:, None]
    last = xp.maximum(count - 1, 0)
    position = xp.asarray(qs, dtype=values.dtype)[None, :] / 100.0 * last.astype(values.dtype)
    lower = xp.floor(position).astype(count.dtype)
    upper = xp.minimum(lower + 1, last)
    low_value = xp.take_along_axis(ordered, lower, axis=1)
    high_value = xp.take_along_axis(ordered, upper, axis=1)
    fraction = position - lower.astype(values.dtype)
    return xp.where(count == 0, xp.nan, low_value + (high_value - low_value) * fraction)


def uint8_percentile(values: Any, q: float, xp: Any) -> Any:
    """``q``-th percentile (linear interpolation) of each row of uint8 ``values [B, N]`` → ``[B]``.

    Exact, from a 256-bin histogram per row: linear time and no sort (sorting is what makes a
    percentile slow in XLA on the CPU). The order statistic of rank r is the number of bins whose
    cumulative count is <= r.
    """
    if xp is np:
        counts = np.stack([np.bincount(row, minlength=256) for row in values])
    else:
        import jax

        counts = jax.vmap(lambda row: xp.zeros(256, xp.int32).at[row].add(1))(values)
    cumulative = xp.cumsum(counts, axis=1)
    position = q / 100.0 * (values.shape[1] - 1)
    lower = int(np.floor(position))
    upper = min(lower + 1, values.shape[1] - 1)
    low_value = (cumulative <= lower).sum(axis=1).astype(xp.float32)
    high_value = (cumulative <= upper).sum(axis=1).astype(xp.float32)
    return low_value + (high_value - low_value) * xp.float32(position - lower)
