"""Colour-space maths shared by the numpy and JAX normalizers.

Every function takes the array namespace ``xp`` (``numpy`` or ``jax.numpy``) so that the CPU and the
device versions run the same formula. Images are float arrays with channels last.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# sRGB (D65) → CIE XYZ, the matrix scikit-image and the sRGB standard use.
_RGB_TO_XYZ = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=np.float32,
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ.astype(np.float64)).astype(np.float32)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
_DELTA = 6.0 / 29.0


def rgb_to_lab(rgb: Any, xp: Any = np) -> Any:
    """CIE L*a*b* (D65) of sRGB values in [0, 1]; L in [0, 100]. Matches skimage.color.rgb2lab."""
    linear = xp.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = (linear @ xp.asarray(_RGB_TO_XYZ.T)) / xp.asarray(_WHITE_D65)
    f = xp.where(xyz > _DELTA**3, xp.cbrt(xyz), xyz / (3 * _DELTA**2) + 4.0 / 29.0)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return xp.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab: Any, xp: Any = np) -> Any:
    """sRGB values (unclipped floats, nominally [0, 1]) of CIE L*a*b* (D65) values."""
    fy = (lab[..., 0] + 16.0) / 116.0
    f = xp.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = xp.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4.0 / 29.0)) * xp.asarray(_WHITE_D65)
    linear = xyz @ xp.asarray(_XYZ_TO_RGB.T)
    positive = xp.maximum(linear, 0.0031308)
    return xp.where(linear > 0.0031308, 1.055 * positive ** (1 / 2.4) - 0.055, 12.92 * linear)


def to_uint8(values: Any, xp: Any = np) -> Any:
    """Round float pixel values in [0, 255] to uint8, clipping what falls outside."""
    return xp.clip(xp.round(values), 0, 255).astype(xp.uint8)


def optical_density(images: Any, xp: Any = np) -> Any:
    """Beer–Lambert optical density ``-ln((I + 1) / 256)`` of uint8-range RGB values.

    The +1 keeps black pixels finite; 256 keeps white pixels at exactly zero density.
    """
    return -xp.log((images.astype(xp.float32) + 1.0) / 256.0)


def from_optical_density(density: Any, xp: Any = np) -> Any:
    """Inverse of :func:`optical_density`, as uint8 RGB."""
    return to_uint8(256.0 * xp.exp(-density) - 1.0, xp)
