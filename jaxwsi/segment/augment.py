"""Random augmentations of one training patch (image, label, weight), 2D and 3D, in numpy.

Geometric changes (flips, quarter turns, elastic deformation) move the image, its labels and its
weights together; for 3D patches quarter turns and elastic fields act in xy (the same field for
every z slice) and flips include z. Intensity changes touch the image only. Each patch gets its
own `numpy.random.Generator`, so a buffer is the same whatever the number of worker threads.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from jaxwsi.segment.config import AugmentConfig


def _elastic_field(
    shape: tuple[int, int], amplitude: float, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Coordinates (2, Y, X) displaced by a smooth random field of at most ``amplitude`` px."""
    field = []
    for _ in range(2):
        d = ndimage.gaussian_filter(rng.uniform(-1, 1, shape), sigma, mode="reflect")
        d *= amplitude / max(float(np.abs(d).max()), 1e-12)
        field.append(d)
    grid = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    return np.stack([grid[0] + field[0], grid[1] + field[1]])


def _warp(array: np.ndarray, coords: np.ndarray, order: int, spatial_dims: int) -> np.ndarray:
    """Resample the last two spatial axes of ``array`` (*spatial[, C]) at ``coords``."""
    extra = array.shape[spatial_dims:]
    flat = array.reshape(*array.shape[:spatial_dims], -1)
    flat = flat.reshape(-1, *array.shape[spatial_dims - 2 : spatial_dims], flat.shape[-1])
    out = np.empty_like(flat)
    for i in range(flat.shape[0]):
        for c in range(flat.shape[-1]):
            out[i, ..., c] = ndimage.map_coordinates(
                flat[i, ..., c], coords, order=order, mode="reflect"
            )
    return out.reshape(*array.shape[:spatial_dims], *extra)


def augment_patch(
    image: np.ndarray,
    label: np.ndarray,
    weight: np.ndarray,
    config: AugmentConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One random draw of ``config`` applied to a patch: image (*S, C), label and weight (*S),
    all of the same spatial size ``S`` (the input window; the caller crops labels after)."""
    spatial_dims = label.ndim
    if config.flip:
        for axis in range(spatial_dims):
            if rng.random() < 0.5:
                image, label, weight = (np.flip(a, axis) for a in (image, label, weight))
    if config.rotate90 and label.shape[-1] == label.shape[-2]:
        turns = int(rng.integers(4))
        axes = (spatial_dims - 2, spatial_dims - 1)
        image, label, weight = (np.rot90(a, turns, axes) for a in (image, label, weight))
    if config.elastic > 0:
        coords = _elastic_field(label.shape[-2:], config.elastic, config.elastic_sigma, rng)
        image = _warp(np.ascontiguousarray(image), coords, 1, spatial_dims)
        label = _warp(np.ascontiguousarray(label), coords, 0, spatial_dims)
        weight = _warp(np.ascontiguousarray(weight), coords, 0, spatial_dims)
    if config.intensity > 0:
        i = config.intensity
        image = image * rng.uniform(1 - i, 1 + i) + rng.uniform(-i, i)
    if config.noise > 0:
        sigma = rng.uniform(0, config.noise) * float(image.std())
        image = image + rng.normal(0.0, sigma, image.shape)
    return (
        np.ascontiguousarray(image, np.float32),
        np.ascontiguousarray(label),
        np.ascontiguousarray(weight),
    )
