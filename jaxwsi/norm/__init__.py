"""Stain normalization (Reinhard, Macenko, Vahadane): native/numpy on the CPU, JAX on the device.

``autoselect(method, source=None)`` returns a normalizer; ``transform(images)`` normalizes an RGB
uint8 image or batch; ``get_params()``/``set_params()`` give the fit as JSON, and
``save_normalizer``/``load_normalizer`` keep it in a model's params.json.
"""

from jaxwsi.norm.base import NotFittedError, StainNormalizer
from jaxwsi.norm.macenko import MacenkoNormalizer
from jaxwsi.norm.params_json import load_normalizer, save_normalizer
from jaxwsi.norm.reference import load_reference_image
from jaxwsi.norm.registry import NORMALIZERS, autoselect
from jaxwsi.norm.reinhard import ReinhardFastNormalizer, ReinhardMaskNormalizer, ReinhardNormalizer
from jaxwsi.norm.vahadane import VahadaneNormalizer

__all__ = [
    "NORMALIZERS",
    "MacenkoNormalizer",
    "NotFittedError",
    "ReinhardFastNormalizer",
    "ReinhardMaskNormalizer",
    "ReinhardNormalizer",
    "StainNormalizer",
    "VahadaneNormalizer",
    "autoselect",
    "load_normalizer",
    "load_reference_image",
    "save_normalizer",
]
