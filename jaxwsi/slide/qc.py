"""Slide-level quality control masks (True = exclude), computed on downsampled slide images.

* ``otsu_mask``: background by Otsu's threshold on HSV saturation after a 7×7 median blur
  (Slideflow's ``qc.Otsu``).
* ``blur_mask``: out-of-focus or featureless areas: |Laplacian| of the grayscale image smoothed
  by a Gaussian (σ = 3) at or below 0.02 (Slideflow's ``GaussianV2``), computed at 4× the tile's
  pixel size.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage
from skimage.filters import threshold_otsu

from jaxwsi.slide.filters import GRAYSPACE_THRESHOLD, saturation

QC_METHODS = ("otsu", "blur", "both")
BLUR_THRESHOLD = 0.02
MEDIAN_SIZE = 7

QCCallable = Callable[[np.ndarray], np.ndarray]
"""A custom QC: RGB uint8 thumbnail [H, W, 3] → bool mask [H, W], True where to exclude."""


def otsu_mask(rgb: np.ndarray) -> np.ndarray:
    """True on background: saturation (0–255, median-blurred) at or below Otsu's threshold."""
    sat = np.round(saturation(rgb) * 255).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(sat).filter(ImageFilter.MedianFilter(MEDIAN_SIZE)))
    if smooth.min() == smooth.max():  # one value: no threshold to find
        return np.full(smooth.shape, bool(smooth.flat[0] < GRAYSPACE_THRESHOLD * 255))
    return smooth <= threshold_otsu(smooth)


def blur_mask(rgb: np.ndarray, threshold: float = BLUR_THRESHOLD) -> np.ndarray:
    """True where the smoothed |Laplacian| of the grayscale image is at or below ``threshold``."""
    gray = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0
    sharpness = ndimage.gaussian_filter(np.abs(ndimage.laplace(gray)), sigma=3)
    return sharpness <= threshold


def check_qc(qc: str | QCCallable | None) -> None:
    """Raise a clear error for an unknown QC method."""
    if qc is not None and not callable(qc) and qc not in QC_METHODS:
        raise ValueError(f"qc must be one of {QC_METHODS}, a callable or None, got {qc!r}")


def apply_custom_qc(qc: QCCallable, rgb: np.ndarray) -> np.ndarray:
    """Run a user QC callable and check that it returned a mask of the thumbnail's shape."""
    mask = np.asarray(qc(rgb))
    if mask.shape != rgb.shape[:2]:
        raise ValueError(
            f"QC callable {getattr(qc, '__name__', qc)!r} returned shape {mask.shape}, "
            f"expected the thumbnail's {rgb.shape[:2]}"
        )
    return mask.astype(bool)
