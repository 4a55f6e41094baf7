"""Files a segmentation run writes besides checkpoints: probability TIFFs and preview PNGs,
encoded in memory and written atomically (`jaxwsi.atomic`: a reader never sees half a file)."""

from __future__ import annotations

import io
import os

import numpy as np

from jaxwsi.atomic import write_bytes_atomic


def write_tiff(path: str | os.PathLike, array: np.ndarray) -> None:
    """A float32 (or any dtype) array as a TIFF (3D arrays as a z-stack)."""
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array)
    write_bytes_atomic(path, buffer.getvalue())


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """An (H, W) or (H, W, 3) uint8 image as a PNG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    write_bytes_atomic(path, buffer.getvalue())


def preview(image: np.ndarray, label: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """Rows of input | truth | prediction (uint8 grey, HW) for a few patches: images (n, *in, C)
    cropped to the output window, labels (n, *out), foreground probabilities (n, *out); 3D
    patches show their middle z slice."""
    rows = []
    for img, lab, prob in zip(image, label, probability, strict=True):
        out = lab.shape
        margin = [(i - o) // 2 for i, o in zip(img.shape[:-1], out, strict=True)]
        img = img[tuple(slice(m, m + o) for m, o in zip(margin, out, strict=True))][..., 0]
        if img.ndim == 3:
            mid = img.shape[0] // 2
            img, lab, prob = img[mid], lab[mid], prob[mid]
        lo, hi = float(img.min()), float(img.max())
        grey = (img - lo) / max(hi - lo, 1e-12)
        rows.append(np.concatenate([grey, (lab > 0).astype(np.float32), prob], axis=1))
    return (np.clip(np.concatenate(rows, axis=0), 0, 1) * 255).round().astype(np.uint8)
