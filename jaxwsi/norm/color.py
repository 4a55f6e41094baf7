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
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
# Linear RGB (row vectors) → XYZ relative to the white point, and back: one matrix product each.
_RGB_TO_XYZ_WHITE = (_RGB_TO_XYZ.T / _WHITE_D65).astype(np.float32)
_XYZ_WHITE_TO_RGB = np.linalg.inv(_RGB_TO_XYZ_WHITE.astype(np.float64)).astype(np.float32)
_DELTA = 6.0 / 29.0


def _srgb_to_linear(rgb: Any, xp: Any) -> Any:
    return xp.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)


def _linear_to_srgb(linear: Any, xp: Any) -> Any:
    positive = xp.maximum(linear, 0.0031308)
    return xp.where(linear > 0.0031308, 1.055 * positive ** (1 / 2.4) - 0.055, 12.92 * linear)


# Lookup tables: uint8 sRGB → linear light (exact), and linear light on a grid of 2^16 steps →
# rounded uint8 sRGB (within 1 level of the exact rounding). Gathers are much cheaper than powers.
_LINEAR_OF_UINT8 = _srgb_to_linear(np.arange(256, dtype=np.float64) / 255.0, np).astype(np.float32)
_UINT8_STEPS = 65535
_UINT8_OF_LINEAR = np.clip(
    np.round(_linear_to_srgb(np.arange(_UINT8_STEPS + 1) / _UINT8_STEPS, np) * 255.0), 0, 255
).astype(np.uint8)


def linear_from_uint8(images: Any, xp: Any = np) -> Any:
    """Linear-light float32 values of uint8 sRGB values (a table lookup)."""
    return xp.asarray(_LINEAR_OF_UINT8)[images]


def uint8_from_linear(linear: Any, xp: Any = np) -> Any:
    """Rounded uint8 sRGB values of linear-light values (clipped to [0, 1]; a table lookup)."""
    index = xp.clip(linear * _UINT8_STEPS + 0.5, xp.float32(0), xp.float32(_UINT8_STEPS))
    return xp.asarray(_UINT8_OF_LINEAR)[index.astype(xp.int32)]


def rgb_to_lab(rgb: Any, xp: Any = np) -> Any:
    """CIE L*a*b* (D65) of sRGB values in [0, 1]; L in [0, 100]. Matches skimage.color.rgb2lab."""
    return lab_from_linear(_srgb_to_linear(rgb, xp), xp)


def lab_to_rgb(lab: Any, xp: Any = np) -> Any:
    """sRGB values (unclipped floats, nominally [0, 1]) of CIE L*a*b* (D65) values."""
    return _linear_to_srgb(linear_from_lab(lab, xp), xp)


def lab_from_linear(linear: Any, xp: Any = np) -> Any:
    """CIE L*a*b* (D65) of linear-light RGB values."""
    xyz = linear @ xp.asarray(_RGB_TO_XYZ_WHITE)
    f = xp.where(xyz > _DELTA**3, xp.cbrt(xyz), xyz / (3 * _DELTA**2) + 4.0 / 29.0)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return xp.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def linear_from_lab(lab: Any, xp: Any = np) -> Any:
    """Linear-light RGB values (unclipped) of CIE L*a*b* (D65) values."""
    fy = (lab[..., 0] + 16.0) / 116.0
    f = xp.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    # f * f * f, not f**3: numpy's float32 power is ~100× slower than two products.
    xyz = xp.where(f > _DELTA, f * f * f, 3 * _DELTA**2 * (f - 4.0 / 29.0))
    return xyz @ xp.asarray(_XYZ_WHITE_TO_RGB)


def to_uint8(values: Any, xp: Any = np) -> Any:
    """Round float pixel values in [0, 255] to uint8, clipping what falls outside."""
    return xp.clip(xp.round(values), xp.float32(0), xp.float32(255)).astype(xp.uint8)


_DENSITY_OF_UINT8 = (-np.log((np.arange(256) + 1.0) / 256.0)).astype(np.float32)


def optical_density(images: Any, xp: Any = np) -> Any:
    """Beer–Lambert optical density ``-ln((I + 1) / 256)`` of uint8 RGB values (a table lookup).

    The +1 keeps black pixels finite; 256 keeps white pixels at exactly zero density.
    """
    return xp.asarray(_DENSITY_OF_UINT8)[images]


def from_optical_density(density: Any, xp: Any = np) -> Any:
    """Inverse of :func:`optical_density`, as uint8 RGB."""
    return to_uint8(256.0 * xp.exp(-density) - 1.0, xp)
