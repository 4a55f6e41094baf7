"""Macenko stain normalization: stain vectors from the extreme angles in the OD principal plane.

Macenko et al., "A method for normalizing histology slides for quantitative analysis", ISBI 2009.
Per image: keep tissue pixels (every channel's OD >= 0.15), project their OD onto the plane of the
two largest principal axes (each axis signed so its red component is positive), take the 1st and
99th percentiles of the angle in that plane as the two stain directions, and get concentrations by
least squares (pseudo-inverse). The numpy and JAX versions run this same code; the default CPU path
runs the per-pixel passes as native kernels and this per-image linear algebra in numpy between them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from jaxwsi import _native
from jaxwsi.norm.stain_matrix import (
    CONCENTRATION_PERCENTILE,
    MIN_TISSUE_PIXELS,
    StainMatrixNormalizer,
    haematoxylin_first,
    unit_columns,
)
from jaxwsi.norm.stats import masked_covariance, masked_percentiles

OD_THRESHOLD = 0.15
ANGLE_PERCENTILE = 1.0
ANGLE_PERCENTILES = (ANGLE_PERCENTILE, 100 - ANGLE_PERCENTILE)


def principal_plane(covariance: Any, xp: Any) -> Any:
    """The two largest principal axes ``[B, 3, 2]`` of OD covariances, red component positive."""
    _, axes = xp.linalg.eigh(covariance)
    plane = axes[..., ::-1][..., :2]
    return xp.where(plane[:, :1, :] < 0, -plane, plane)


def stains_from_angles(plane: Any, extremes: Any, xp: Any) -> Any:
    """Unit stain matrices ``[B, 3, 2]`` (H first) at angles ``extremes [B, 2]`` in ``plane``."""
    low, high = extremes[:, 0], extremes[:, 1]
    low_vector = xp.einsum("bij,bj->bi", plane, xp.stack([xp.cos(low), xp.sin(low)], axis=-1))
    high_vector = xp.einsum("bij,bj->bi", plane, xp.stack([xp.cos(high), xp.sin(high)], axis=-1))
    return unit_columns(haematoxylin_first(low_vector, high_vector, xp), xp)


def _float32(values: Any) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float32)


class MacenkoNormalizer(StainMatrixNormalizer):
    """Macenko normalization (see the module docstring)."""

    method: ClassVar[str] = "macenko"
    has_native: ClassVar[bool] = True

    def _stains(self, density: Any, xp: Any) -> tuple[Any, Any]:
        tissue = xp.all(density >= OD_THRESHOLD, axis=-1)
        plane = principal_plane(masked_covariance(density, tissue, xp), xp)
        projected = density @ plane
        angle = xp.arctan2(projected[..., 1], projected[..., 0])
        extremes = masked_percentiles(angle, tissue, ANGLE_PERCENTILES, xp)
        return stains_from_angles(plane, extremes, xp), tissue

    def _native_transform(self, images: np.ndarray, targets: Mapping[str, Any]) -> np.ndarray:
        covariance, tissue_pixels = _native.od_tissue_covariance(images, OD_THRESHOLD)
        plane = principal_plane(covariance, np)
        extremes = _native.od_angle_percentiles(
            images, _float32(plane), OD_THRESHOLD, list(ANGLE_PERCENTILES)
        )
        enough = tissue_pixels >= MIN_TISSUE_PIXELS
        # As in _transform: images without tissue are copied; a finite stand-in for their stains.
        stains = np.where(
            enough[:, None, None], stains_from_angles(plane, extremes, np), targets["stain_matrix"]
        )
        out = np.empty_like(images)
        _native.od_reconstruct(
            images,
            _float32(np.linalg.pinv(stains)),
            _float32(targets["stain_matrix"]),
            _float32(targets["max_concentrations"]),
            enough,
            CONCENTRATION_PERCENTILE,
            out,
        )
        return out

    def _concentrations(self, density: Any, stains: Any, xp: Any) -> Any:
        return density @ xp.swapaxes(xp.linalg.pinv(stains), 1, 2)
