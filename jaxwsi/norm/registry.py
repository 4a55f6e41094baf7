"""Normalizers by name, and autoselect(): build one and fit it from a source in one call."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from jaxwsi.norm.base import StainNormalizer
from jaxwsi.norm.macenko import MacenkoNormalizer
from jaxwsi.norm.reinhard import ReinhardFastNormalizer, ReinhardMaskNormalizer, ReinhardNormalizer
from jaxwsi.norm.vahadane import VahadaneNormalizer

NORMALIZERS: dict[str, type[StainNormalizer]] = {
    cls.method: cls
    for cls in (
        ReinhardNormalizer,
        ReinhardFastNormalizer,
        ReinhardMaskNormalizer,
        MacenkoNormalizer,
        VahadaneNormalizer,
    )
}


def autoselect(method: str, source: Any = None) -> StainNormalizer:
    """A ``method`` normalizer fitted to ``source``.

    ``source`` may be None (the built-in reference fit, computed on first use), a path to an RGB
    image file, an RGB uint8 array, or a parameter mapping as returned by ``get_params()``.
    """
    if not isinstance(method, str) or method not in NORMALIZERS:
        raise ValueError(
            f"unknown stain normalizer {method!r}; choose one of {sorted(NORMALIZERS)}"
        )
    normalizer = NORMALIZERS[method]()
    if source is None:
        return normalizer
    if isinstance(source, Mapping):
        return normalizer.set_params(source)
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"normalizer source image not found: {path}")
        with Image.open(path) as image:
            return normalizer.fit(np.asarray(image.convert("RGB")))
    if isinstance(source, np.ndarray):
        return normalizer.fit(source)
    raise TypeError(
        f"normalizer source must be None, an image path, an RGB uint8 array or a parameter "
        "mapping, "
        f"got {type(source).__name__}"
    )
