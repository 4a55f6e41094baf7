"""Macenko stain normalization: stain vectors from the extreme angles in the OD principal plane.

Macenko et al., "A method for normalizing histology slides for quantitative analysis", ISBI 2009.
Per image: keep tissue pixels (every channel's OD >= 0.15), project their OD onto the plane of the
two largest principal axes (each axis signed so its red component is positive), take the 1st and
99th percentiles of the angle in that plane as the two stain directions, and get concentrations by
least squares (pseudo-inverse). The numpy and JAX versions run this same code.
"""

from __future__ import annotations

from typing import Any, ClassVar

from jaxwsi.norm.stain_matrix import StainMatrixNormalizer, haematoxylin_first, unit_columns
from jaxwsi.norm.stats import masked_covariance, masked_percentiles

OD_THRESHOLD = 0.15
ANGLE_PERCENTILE = 1.0


class MacenkoNormalizer(StainMatrixNormalizer):
    """Macenko normalization (see the module docstring)."""

    method: ClassVar[str] = "macenko"

    def _stains(self, density: Any, xp: Any) -> tuple[Any, Any]:
        tissue = xp.all(density >= OD_THRESHOLD, axis=-1)
        _, axes = xp.linalg.eigh(masked_covariance(density, tissue, xp))
        plane = axes[..., ::-1][..., :2]
        plane = xp.where(plane[:, :1, :] < 0, -plane, plane)
        projected = density @ plane
        angle = xp.arctan2(projected[..., 1], projected[..., 0])
        extremes = masked_percentiles(angle, tissue, (ANGLE_PERCENTILE, 100 - ANGLE_PERCENTILE), xp)
        low, high = extremes[:, 0], extremes[:, 1]
        low_vector = xp.einsum("bij,bj->bi", plane, xp.stack([xp.cos(low), xp.sin(low)], axis=-1))
        high_vector = xp.einsum(
            "bij,bj->bi", plane, xp.stack([xp.cos(high), xp.sin(high)], axis=-1)
        )
        return unit_columns(haematoxylin_first(low_vector, high_vector, xp), xp), tissue

    def _concentrations(self, density: Any, stains: Any, xp: Any) -> Any:
        return density @ xp.swapaxes(xp.linalg.pinv(stains), 1, 2)
