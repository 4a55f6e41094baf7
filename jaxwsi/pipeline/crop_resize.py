"""The first two preprocessing steps: a square crop and an antialiased resize."""

from __future__ import annotations

import numpy as np
from PIL import Image


def crop_square(images: np.ndarray, left: int, width: int) -> np.ndarray:
    """``images[..., left:left+width, left:left+width, :]`` (Slideflow's crop_left / crop_width).

    Works on ``[H, W, C]`` or ``[B, H, W, C]``; the crop must fit inside the image.
    """
    height, full_width = images.shape[-3], images.shape[-2]
    if left < 0 or width <= 0:
        raise ValueError(f"crop_left must be >= 0 and crop_width > 0, got {left} and {width}")
    if left + width > min(height, full_width):
        raise ValueError(
            f"crop [{left}, {left + width}) does not fit in an image of {height}×{full_width}"
        )
    return images[..., left : left + width, left : left + width, :]


def resize_square(images: np.ndarray, target: int) -> np.ndarray:
    """Resize RGB uint8 ``[H, W, 3]`` or ``[B, H, W, 3]`` to ``target``×``target`` pixels.

    Pillow's bilinear filter, which widens its support when shrinking: an antialiased resize (like
    ``tf.image.resize(antialias=True)``). Images already at the size are returned unchanged.
    """
    if target <= 0:
        raise ValueError(f"resize_target must be > 0, got {target}")
    if images.shape[-3] == target and images.shape[-2] == target:
        return images
    if images.ndim == 3:
        return np.asarray(
            Image.fromarray(images).resize((target, target), Image.Resampling.BILINEAR)
        )
    return np.stack([resize_square(image, target) for image in images])
