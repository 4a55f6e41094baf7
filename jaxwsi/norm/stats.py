"""Per-image statistics over a pixel mask, vectorized over a batch, for numpy and JAX alike.

Arrays are ``[B, N, ...]`` (B images of N pixels) with a boolean mask ``[B, N]``. A fixed shape with
a mask (rather than a ragged selection) is what lets the same code run under ``jax.jit``.
"""

from __future__ import annotations

from typing import Any


def _refined_mean(values: Any, weights: Any, count: Any, xp: Any) -> Any:
    """Weighted mean over axis 1, corrected by a second pass over the residuals.

    numpy sums a float32 axis that is not innermost one element after another, losing ~1e-4
    relative; the second pass makes numpy and JAX agree to float32 precision.
    """
    mean = (values * weights).sum(axis=1) / count
    return mean + ((values - mean[:, None, :]) * weights).sum(axis=1) / count


def masked_mean_std(values: Any, mask: Any, xp: Any) -> tuple[Any, Any]:
    """Mean and population std of ``values [B, N, C]`` over masked pixels → ``[B, C]``."""
    weights = mask.astype(values.dtype)[..., None]
    count = xp.maximum(weights.sum(axis=1), 1.0)
    mean = _refined_mean(values, weights, count, xp)
    variance = (((values - mean[:, None, :]) ** 2) * weights).sum(axis=1) / count
    return mean, xp.sqrt(variance)


def masked_covariance(values: Any, mask: Any, xp: Any) -> Any:
    """Sample covariance ``[B, C, C]`` of ``values [B, N, C]`` over masked pixels."""
    weights = mask.astype(values.dtype)[..., None]
    count = weights.sum(axis=1)
    mean = _refined_mean(values, weights, xp.maximum(count, 1.0), xp)
    centred = (values - mean[:, None, :]) * weights
    return xp.einsum("bni,bnj->bij", centred, centred) / xp.maximum(count - 1.0, 1.0)[..., None]


def masked_percentile(values: Any, mask: Any, q: float, xp: Any) -> Any:
    """``q``-th percentile of ``values [B, N]`` over masked entries, per row → ``[B]``.

    Same result as ``numpy.percentile`` (linear interpolation) on each row's masked entries;
    masked-out entries sort last as +inf and are never indexed. Rows with no masked entry give nan.
    """
    ordered = xp.sort(xp.where(mask, values, xp.inf), axis=1)
    count = mask.sum(axis=1)
    position = (q / 100.0) * xp.maximum(count - 1, 0).astype(values.dtype)
    lower = xp.floor(position).astype(count.dtype)
    upper = xp.minimum(lower + 1, xp.maximum(count - 1, 0))
    low_value = xp.take_along_axis(ordered, lower[:, None], axis=1)[:, 0]
    high_value = xp.take_along_axis(ordered, upper[:, None], axis=1)[:, 0]
    fraction = position - lower.astype(values.dtype)
    empty = count == 0
    low_value = xp.where(empty, xp.nan, low_value)
    high_value = xp.where(empty, xp.nan, high_value)
    return low_value + (high_value - low_value) * fraction
