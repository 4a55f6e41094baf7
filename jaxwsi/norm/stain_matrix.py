"""Normalizers that separate haematoxylin and eosin in optical density (Macenko, Vahadane).

Each image's optical density ``OD = -ln((I + 1) / 256)`` is modelled as ``C @ S.T``: a 3×2 stain
matrix S (unit columns, haematoxylin first) times per-pixel concentrations C. Normalizing keeps the
image's own concentrations, rescales them so their 99th percentile matches the target's, and
rebuilds the image with the target's stain matrix. Subclasses say how S and C are estimated.

Stain augmentation (``jitter``, 8 standard normals z per image) perturbs the target:
``S * exp(0.05 * z[:6])`` (then unit columns again) and ``max_concentrations * exp(0.1 * z[6:])``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from jaxwsi.norm.base import StainNormalizer
from jaxwsi.norm.color import from_optical_density, optical_density

STAIN_JITTER = np.float32(0.05)
CONCENTRATION_JITTER = np.float32(0.1)
CONCENTRATION_PERCENTILE = 99.0
#: Images with fewer tissue pixels than this are returned unchanged.
MIN_TISSUE_PIXELS = 16


def unit_columns(matrix: Any, xp: Any) -> Any:
    """``matrix [..., 3, 2]`` with each column scaled to unit length."""
    return matrix / xp.maximum(xp.linalg.norm(matrix, axis=-2, keepdims=True), 1e-12)


def haematoxylin_first(first: Any, second: Any, xp: Any) -> Any:
    """Stack two stain vectors ``[B, 3]`` into ``[B, 3, 2]``, the one with more red OD (H) first."""
    swap = first[:, 0] < second[:, 0]
    ordered = xp.stack([first, second], axis=-1)
    return xp.where(swap[:, None, None], ordered[..., ::-1], ordered)


class StainMatrixNormalizer(StainNormalizer):
    """Shared fit/transform of stain-matrix normalizers (module docstring)."""

    param_shapes: ClassVar[dict[str, tuple[int, ...]]] = {
        "stain_matrix": (3, 2),
        "max_concentrations": (2,),
    }
    jitter_size: ClassVar[int] = 8

    @abstractmethod
    def _stains(self, density: Any, xp: Any) -> tuple[Any, Any]:
        """Stain matrices ``[B, 3, 2]`` and tissue masks ``[B, N]`` of ``density [B, N, 3]``."""

    @abstractmethod
    def _concentrations(self, density: Any, stains: Any, xp: Any) -> Any:
        """Concentrations ``[B, N, 2]`` of ``density [B, N, 3]`` under ``stains [B, 3, 2]``."""

    def _fit(self, image: np.ndarray) -> dict[str, np.ndarray]:
        density = optical_density(image, np).reshape(1, -1, 3)
        stains, tissue = self._stains(density, np)
        if tissue.sum() < MIN_TISSUE_PIXELS:
            raise ValueError(
                f"{self.method}: the fit image has fewer than {MIN_TISSUE_PIXELS} tissue pixels"
            )
        concentrations = self._concentrations(density, stains, np)
        top = np.percentile(concentrations, CONCENTRATION_PERCENTILE, axis=1)
        return {"stain_matrix": stains[0], "max_concentrations": top[0]}

    def _jittered_targets(
        self, params: Mapping[str, Any], batch_size: int, jitter: Any, xp: Any
    ) -> dict[str, Any]:
        stains = xp.broadcast_to(params["stain_matrix"], (batch_size, 3, 2))
        top = xp.broadcast_to(params["max_concentrations"], (batch_size, 2))
        if jitter is not None:
            stains = unit_columns(
                stains * xp.exp(STAIN_JITTER * jitter[:, :6].reshape(-1, 3, 2)), xp
            )
            top = top * xp.exp(CONCENTRATION_JITTER * jitter[:, 6:8])
        return {"stain_matrix": stains, "max_concentrations": top}

    def _transform(self, images: Any, targets: Mapping[str, Any], xp: Any) -> Any:
        density = optical_density(images, xp).reshape(images.shape[0], -1, 3)
        stains, tissue = self._stains(density, xp)
        enough = tissue.sum(axis=1) >= MIN_TISSUE_PIXELS
        # Images without tissue are returned as they are; a finite stand-in keeps the maths finite.
        stains = xp.where(enough[:, None, None], stains, targets["stain_matrix"])
        concentrations = self._concentrations(density, stains, xp)
        # Percentile along the last, contiguous axis: numpy partitions strided axes slowly.
        top = xp.percentile(xp.swapaxes(concentrations, 1, 2), CONCENTRATION_PERCENTILE, axis=-1)
        scale = targets["max_concentrations"] / xp.maximum(top, 1e-6)
        scaled = concentrations * scale[:, None, :]
        rebuilt = scaled @ xp.swapaxes(targets["stain_matrix"], 1, 2)
        out = from_optical_density(rebuilt, xp).reshape(images.shape)
        return xp.where(enough[:, None, None, None], out, images)
