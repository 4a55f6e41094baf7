"""The built-in reference image normalizers fit to when no fit is given (see README.md here)."""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np
from PIL import Image

REFERENCE_IMAGE = "reference.jpg"


@cache
def load_reference_image() -> np.ndarray:
    """The packaged H&E reference image as read-only RGB uint8 ``[300, 500, 3]``."""
    with resources.files("jaxwsi.norm").joinpath(REFERENCE_IMAGE).open("rb") as handle:
        image = np.asarray(Image.open(handle).convert("RGB"))
    image.setflags(write=False)
    return image
