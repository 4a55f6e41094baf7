"""Device memory: recognizing a real out-of-memory error, halving the batch, and measuring the
largest patch or batch that fits (``size_in: auto``, ``batch_size: auto``).

Only XLA's ``RESOURCE_EXHAUSTED`` runtime error counts as out of memory; any other exception
propagates (EPySeg halves on every exception, which hides real bugs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import jax

from jaxwsi.errors import JaxwsiError

T = TypeVar("T")


class OutOfMemoryError(JaxwsiError, RuntimeError):
    """Nothing fits on the device, even the smallest batch or patch."""


def is_oom(error: BaseException) -> bool:
    """Whether ``error`` is XLA failing to allocate device memory."""
    return isinstance(error, jax.errors.JaxRuntimeError) and "RESOURCE_EXHAUSTED" in str(error)


def halved_batch(batch_size: int, devices: int) -> int:
    """Half of ``batch_size``, kept a multiple of ``devices`` (each device halves its share);
    `OutOfMemoryError` with advice when a device's share would reach 0."""
    per_device = batch_size // devices // 2
    if per_device < 1:
        raise OutOfMemoryError(
            f"out of device memory with {batch_size // devices} patch(es) per device: use "
            "smaller patches (size_in, a smaller prediction tile) or a smaller model "
            "(model.features)"
        )
    return per_device * devices


def largest_fitting(candidates: Sequence[T], fits: Callable[[T], None], what: str) -> T:
    """The last of ``candidates`` (ascending) for which ``fits`` returns without an out-of-memory
    error, trying them in order and stopping at the first that does not fit."""
    best: T | None = None
    for candidate in candidates:
        try:
            fits(candidate)
        except jax.errors.JaxRuntimeError as e:
            if not is_oom(e):
                raise
            break
        best = candidate
    if best is None:
        raise OutOfMemoryError(
            f"{what}: even the smallest candidate {candidates[0]} does not fit in device memory"
            if candidates
            else f"{what}: no candidate sizes to try"
        )
    return best
