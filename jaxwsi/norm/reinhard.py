"""Reinhard colour transfer in CIE L*a*b*: match each channel's mean and standard deviation.

Reinhard, Ashikhmin, Gooch & Shirley, "Color transfer between images", IEEE CG&A 21(5), 2001.
Three variants, as Slideflow defines them:

- ``reinhard``: brightness standardization (scale so the 90th percentile of all values is 255), then
  the L*a*b* mean/std transfer.
- ``reinhard_fast``: the same without brightness standardization.
- ``reinhard_mask``: ``reinhard`` that ignores white background (L*/100 >= 0.93): statistics are
  taken over tissue pixels only, when fitting and when transforming, and background pixels are
  returned unchanged. (Slideflow's version takes statistics over every pixel and only masks the
  output.)

Stain augmentation (``jitter``, 6 standard normals z per image) perturbs the target:
``means + (3, 2, 2) * z[:3]`` (L*, a*, b* units) and ``stds * exp(0.1 * z[3:])``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from jaxwsi import _native
from jaxwsi.norm.base import StainNormalizer
from jaxwsi.norm.color import (
    lab_from_linear,
    linear_from_lab,
    linear_from_uint8,
    to_uint8,
    uint8_from_linear,
)
from jaxwsi.norm.stats import masked_mean_std, uint8_percentile

MEAN_JITTER = np.array([3.0, 2.0, 2.0], dtype=np.float32)
LOG_STD_JITTER = np.float32(0.1)
BRIGHTNESS_PERCENTILE = 90.0
#: Floor of a channel's std (L*a*b* units): a flat channel (a blank tile) is not stretched by 1e6.
MIN_STD = 0.1
#: Images with fewer tissue pixels than this are returned unchanged by reinhard_mask.
MIN_TISSUE_PIXELS = 16


def standardize_brightness(images: Any, xp: Any) -> Any:
    """Scale each uint8 image ``[B, H, W, 3]`` so its 90th-percentile value is 255 (uint8)."""
    level = uint8_percentile(images.reshape(images.shape[0], -1), BRIGHTNESS_PERCENTILE, xp)
    scale = 255.0 / xp.maximum(level, 1.0)
    return to_uint8(images.astype(xp.float32) * scale[:, None, None, None], xp)


def lab_pixels(images: Any, brightness: bool, xp: Any) -> Any:
    """L*a*b* values ``[B, N, 3]`` of uint8 images, brightness-standardized first if asked."""
    if brightness:
        images = standardize_brightness(images, xp)
    return lab_from_linear(linear_from_uint8(images, xp), xp).reshape(images.shape[0], -1, 3)


def tissue_mask(lab: Any, threshold: float | None, xp: Any) -> Any:
    """Pixels darker than ``threshold`` (L*/100), or every pixel when threshold is None."""
    if threshold is None:
        return xp.ones(lab.shape[:2], dtype=bool)
    return lab[..., 0] / 100.0 < threshold


class ReinhardNormalizer(StainNormalizer):
    """Reinhard normalization with brightness standardization (module docstring)."""

    method: ClassVar[str] = "reinhard"
    param_shapes: ClassVar[dict[str, tuple[int, ...]]] = {"target_means": (3,), "target_stds": (3,)}
    jitter_size: ClassVar[int] = 6
    has_native: ClassVar[bool] = True
    brightness: ClassVar[bool] = True
    mask_threshold: ClassVar[float | None] = None

    def _fit(self, image: np.ndarray) -> dict[str, np.ndarray]:
        lab = lab_pixels(image, self.brightness, np)
        mask = tissue_mask(lab, self.mask_threshold, np)
        if mask.sum() < MIN_TISSUE_PIXELS:
            raise ValueError(
                f"{self.method}: the fit image has fewer than {MIN_TISSUE_PIXELS} tissue pixels"
            )
        means, stds = masked_mean_std(lab, mask, np)
        return {"target_means": means[0], "target_stds": stds[0]}

    def _jittered_targets(
        self, params: Mapping[str, Any], batch_size: int, jitter: Any, xp: Any
    ) -> dict[str, Any]:
        means = xp.broadcast_to(params["target_means"], (batch_size, 3))
        stds = xp.broadcast_to(params["target_stds"], (batch_size, 3))
        if jitter is not None:
            means = means + xp.asarray(MEAN_JITTER) * jitter[:, :3]
            stds = stds * xp.exp(LOG_STD_JITTER * jitter[:, 3:6])
        return {"target_means": means, "target_stds": stds}

    def _transform(self, images: Any, targets: Mapping[str, Any], xp: Any) -> Any:
        lab = lab_pixels(images, self.brightness, xp)
        mask = tissue_mask(lab, self.mask_threshold, xp)
        means, stds = masked_mean_std(lab, mask, xp)
        scale = targets["target_stds"] / xp.maximum(stds, MIN_STD)
        moved = (lab - means[:, None, :]) * scale[:, None, :] + targets["target_means"][:, None, :]
        out = uint8_from_linear(linear_from_lab(moved, xp), xp).reshape(images.shape)
        if self.mask_threshold is None:
            return out
        enough = mask.sum(axis=1) >= MIN_TISSUE_PIXELS
        keep = (mask & enough[:, None]).reshape(images.shape[:3])
        return xp.where(keep[..., None], out, images)

    def _native_transform(self, images: np.ndarray, targets: Mapping[str, Any]) -> np.ndarray:
        out = np.empty_like(images)
        _native.reinhard_transform(
            images,
            np.ascontiguousarray(targets["target_means"], dtype=np.float32),
            np.ascontiguousarray(targets["target_stds"], dtype=np.float32),
            out,
            brightness_percentile=BRIGHTNESS_PERCENTILE if self.brightness else None,
            mask_threshold=self.mask_threshold,
            min_std=MIN_STD,
            min_tissue_pixels=MIN_TISSUE_PIXELS,
        )
        return out


class ReinhardFastNormalizer(ReinhardNormalizer):
    """Reinhard normalization without brightness standardization (module docstring)."""

    method: ClassVar[str] = "reinhard_fast"
    brightness: ClassVar[bool] = False


class ReinhardMaskNormalizer(ReinhardNormalizer):
    """Reinhard normalization of tissue only, white background ignored (module docstring)."""

    method: ClassVar[str] = "reinhard_mask"
    mask_threshold: ClassVar[float | None] = 0.93
