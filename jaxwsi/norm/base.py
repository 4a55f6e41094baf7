"""The stain-normalizer protocol: fit to a target, keep JSON-able parameters, transform batches.

A subclass supplies three pure functions of the array namespace ``xp`` (numpy or jax.numpy): the
fit (numpy only), the per-image target parameters (with optional stain jitter) and the transform.
The base class does validation, the built-in reference fit, parameter (de)serialization and builds
the jitted JAX version from the same transform code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from jaxwsi.errors import JaxwsiError
from jaxwsi.norm.images import as_image_batch, restore_rank
from jaxwsi.norm.reference import load_reference_image


class NotFittedError(JaxwsiError, RuntimeError):
    """transform() was called on a normalizer that has no fit and no built-in default."""


class StainNormalizer(ABC):
    """Base class of every stain normalizer (see the module docstring).

    Args:
        default_fit: use the fit to the built-in reference image (``jaxwsi/norm/reference.jpg``)
            when no fit is given. With False, transform() before fit() raises NotFittedError.
    """

    method: ClassVar[str]
    #: Shape of each fitted parameter (the keys of get_params() besides "method").
    param_shapes: ClassVar[dict[str, tuple[int, ...]]]
    #: Standard-normal draws per image that stain augmentation ("n") feeds to transform().
    jitter_size: ClassVar[int]
    #: Whether transform() has a JAX version (jax_transform()).
    has_jax: ClassVar[bool] = True
    #: Whether transform() runs native kernels (_native_transform()) instead of numpy by default.
    has_native: ClassVar[bool] = False

    def __init__(self, *, default_fit: bool = True) -> None:
        self.default_fit = default_fit
        self._params: dict[str, np.ndarray] | None = None

    # ----------------------------------------------------------------------------- fitting
    def fit(self, image: np.ndarray) -> StainNormalizer:
        """Fit the target to an RGB uint8 image ``[H, W, 3]`` (a batch's pixels are pooled)."""
        batch, _ = as_image_batch(image, "fit image")
        pooled = batch.reshape(1, -1, batch.shape[2], 3)
        self._params = self._validated({k: np.asarray(v) for k, v in self._fit(pooled).items()})
        return self

    def fit_reference(self) -> StainNormalizer:
        """Fit to the built-in reference image (what an unfitted normalizer uses by default)."""
        return self.fit(load_reference_image())

    def fit_from_params(self, **params: Any) -> StainNormalizer:
        """Set the fit from keyword parameters, e.g. ``fit_from_params(target_means=..., ...)``."""
        return self.set_params(params)

    def set_params(self, params: Mapping[str, Any]) -> StainNormalizer:
        """Set the fit from a mapping like get_params() returns (the "method" key is optional)."""
        params = dict(params)
        method = params.pop("method", self.method)
        if method != self.method:
            raise ValueError(f"parameters are for method {method!r}, not {self.method!r}")
        self._params = self._validated(params)
        return self

    def get_params(self) -> dict[str, Any]:
        """The fit as a JSON-able dict: ``{"method": ..., name: nested lists of floats}``."""
        return {"method": self.method, **{k: v.tolist() for k, v in self.params.items()}}

    @property
    def is_fitted(self) -> bool:
        """True once fit(), fit_reference(), set_params() or the default reference fit ran."""
        return self._params is not None

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The fitted parameters as float32 arrays (fitting the built-in reference if allowed)."""
        if self._params is None:
            if not self.default_fit:
                raise NotFittedError(
                    f"{self.method} normalizer has not been fitted: call fit(image), "
                    "set_params(...) or fit_reference() first"
                )
            self.fit_reference()
        assert self._params is not None
        return self._params

    def _validated(self, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
        expected = set(self.param_shapes)
        if set(params) != expected:
            raise ValueError(
                f"{self.method} parameters must be exactly {sorted(expected)}, got {sorted(params)}"
            )
        checked = {}
        for name, shape in self.param_shapes.items():
            value = np.asarray(params[name], dtype=np.float32)
            if value.shape != shape:
                raise ValueError(
                    f"{self.method} parameter {name!r} must have shape {shape}, got {value.shape}"
                )
            if not np.all(np.isfinite(value)):
                raise ValueError(
                    f"{self.method} parameter {name!r} is not finite: {value.tolist()}"
                )
            checked[name] = value
        return checked

    # ----------------------------------------------------------------------------- transforming
    def transform(
        self, images: np.ndarray, jitter: np.ndarray | None = None, *, native: bool = True
    ) -> np.ndarray:
        """Normalize an RGB uint8 image ``[H, W, 3]`` or batch ``[B, H, W, 3]`` on the CPU.

        ``jitter`` ([B, jitter_size] standard normals, one row per image) perturbs the target per
        image: this is stain augmentation. Returns uint8 of the input's shape.

        Methods with native kernels (``has_native``: the Reinhard family and Macenko) run them,
        multi-threaded on rayon's pool with the GIL released; ``native=False`` runs the numpy
        reference code instead, which the kernels match to within one grey level.
        """
        batch, single = as_image_batch(images)
        targets = self._targets_for(batch.shape[0], jitter, np)
        if native and self.has_native:
            out = self._native_transform(np.ascontiguousarray(batch), targets)
        else:
            out = self._transform(batch, targets, np)
        return restore_rank(out, single)

    def jax_transform(self) -> Callable[..., Any]:
        """A jitted ``f(images [B, H, W, 3] uint8, jitter=None) -> uint8`` that runs on the device.

        Same maths as transform(); the fitted parameters are baked in as constants. For stain
        augmentation on the device pass ``jitter=jax.random.normal(key, (B, self.jitter_size))``.
        """
        if not self.has_jax:
            raise NotImplementedError(
                f"{self.method} has no JAX transform; use transform() on the CPU"
            )
        import jax
        import jax.numpy as jnp

        params = {k: jnp.asarray(v) for k, v in self.params.items()}

        def run(images: Any, jitter: Any = None) -> Any:
            if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != jnp.uint8:
                raise ValueError(
                    f"images must be uint8 [B, H, W, 3], got {images.dtype} {tuple(images.shape)}"
                )
            targets = self._jittered_targets(params, images.shape[0], jitter, jnp)
            return self._transform(images, targets, jnp)

        return jax.jit(run)

    def _targets_for(self, batch_size: int, jitter: np.ndarray | None, xp: Any) -> dict[str, Any]:
        if jitter is not None:
            jitter = np.asarray(jitter, dtype=np.float32)
            if jitter.shape != (batch_size, self.jitter_size):
                raise ValueError(
                    f"jitter must have shape ({batch_size}, {self.jitter_size}), got {jitter.shape}"
                )
        return self._jittered_targets(self.params, batch_size, jitter, xp)

    @abstractmethod
    def _fit(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Target parameters of one image ``[1, H, W, 3]``."""

    @abstractmethod
    def _jittered_targets(
        self, params: Mapping[str, Any], batch_size: int, jitter: Any, xp: Any
    ) -> dict[str, Any]:
        """Per-image targets (leading axis B), perturbed by ``jitter [B, jitter_size]`` if given."""

    @abstractmethod
    def _transform(self, images: Any, targets: Mapping[str, Any], xp: Any) -> Any:
        """Normalize ``images [B, H, W, 3]`` uint8 toward per-image ``targets``; returns uint8."""

    def _native_transform(self, images: np.ndarray, targets: Mapping[str, Any]) -> np.ndarray:
        """``_transform(images, targets, np)`` by native kernels (C-contiguous ``images``)."""
        raise NotImplementedError(f"{self.method} has no native transform")

    def __repr__(self) -> str:
        state = "fitted" if self.is_fitted else "unfitted"
        return f"{type(self).__name__}(method={self.method!r}, {state})"
