"""The preprocessing chain between the loader and the model, as a Grain transform or a function.

Order (Slideflow's): crop → resize → stain normalization → augmentation → transform → standardize.

- crop: ``crop_left``/``crop_width`` square crop; resize: ``resize_target`` (antialiased).
- normalization: a :class:`jaxwsi.norm.StainNormalizer` or a method name (built-in reference fit).
- augmentation: the letters of :mod:`jaxwsi.pipeline.augment`. ``n`` (stain augmentation) makes the
  normalization step use a per-image randomly perturbed target (see the normalizer's docstring);
  like in Slideflow it takes effect at the normalization step, whatever its place in the string.
- transform: any callable on the image array (``[H, W, 3]`` or ``[B, H, W, 3]``, as it came in).
- standardize: True / ``"scale"`` → ``x / 127.5 - 1`` float32; ``"per_image"``; False keeps uint8.

Elements are a dict with an ``"image"`` entry (the loader's batch dicts; other entries pass through
unchanged) or a bare image array, single or batched. Every random choice comes from a per-example
generator derived from the element's Grain generator (:mod:`jaxwsi.pipeline.example_rng`), so the
output depends only on (seed, element index, position in batch) and survives checkpoint/restore.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grain
import numpy as np

from jaxwsi.norm.base import NotFittedError, StainNormalizer
from jaxwsi.norm.images import as_image_batch, restore_rank
from jaxwsi.norm.registry import autoselect
from jaxwsi.pipeline.augment import apply_augment, draw_augment, parse_augment
from jaxwsi.pipeline.crop_resize import crop_square, resize_square
from jaxwsi.pipeline.example_rng import example_generators
from jaxwsi.pipeline.standardize import check_mode, standardize

IMAGE_KEY = "image"


def _standardize_mode(value: bool | str | None) -> str | None:
    if value is True:
        return "scale"
    if value is False or value is None:
        return None
    return check_mode(value)


def _resolve_normalizer(normalizer: StainNormalizer | str | None) -> StainNormalizer | None:
    if normalizer is None or isinstance(normalizer, StainNormalizer):
        resolved = normalizer
    elif isinstance(normalizer, str):
        resolved = autoselect(normalizer)
    else:
        raise TypeError(
            f"normalizer must be a StainNormalizer, a method name or None, "
            f"got {type(normalizer).__name__}"
        )
    if resolved is not None and not resolved.is_fitted:
        if not resolved.default_fit:
            raise NotFittedError(
                f"the {resolved.method} normalizer given to preprocess is not fitted"
            )
        resolved.fit_reference()  # now, once, rather than in every worker process
    return resolved


@dataclass(frozen=True, init=False)
class Preprocessor:
    """The whole chain with its settings; call it as ``pre(element, rng)`` (Grain random_map).

    Picklable, so it runs in Grain's worker processes. See the module docstring for the steps.
    """

    crop_left: int | None
    crop_width: int | None
    resize_target: int | None
    normalizer: StainNormalizer | None
    augment: str
    transform: Callable[[np.ndarray], np.ndarray] | None
    standardize: str | None

    def __init__(
        self,
        *,
        crop_left: int | None = None,
        crop_width: int | None = None,
        resize_target: int | None = None,
        normalizer: StainNormalizer | str | None = None,
        augment: str | bool | None = False,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        standardize: bool | str | None = True,
    ) -> None:
        if (crop_left is None) != (crop_width is None):
            raise ValueError("crop_left and crop_width must be given together")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        letters = parse_augment(augment)
        resolved = _resolve_normalizer(normalizer)
        if "n" in letters and resolved is None:
            raise ValueError("stain augmentation 'n' needs a normalizer (normalizer=...)")
        for name, value in (
            ("crop_left", crop_left),
            ("crop_width", crop_width),
            ("normalizer", resolved),
            ("augment", letters),
            ("resize_target", resize_target),
            ("transform", transform),
            ("standardize", _standardize_mode(standardize)),
        ):
            object.__setattr__(self, name, value)

    @property
    def is_random(self) -> bool:
        """Whether the chain draws random numbers (any augmentation)."""
        return bool(self.augment)

    def images(self, images: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Run the chain on an RGB uint8 image ``[H, W, 3]`` or batch ``[B, H, W, 3]``."""
        batch, single = as_image_batch(images)
        if self.crop_left is not None and self.crop_width is not None:
            batch = crop_square(batch, self.crop_left, self.crop_width)
        if self.resize_target is not None:
            batch = resize_square(batch, self.resize_target)
        draws = []
        if self.augment:
            if rng is None:
                raise ValueError(
                    "augmentation needs a random generator: pass rng=, or use "
                    "jaxwsi.pipeline.preprocess(dataset, seed=...)"
                )
            stain_size = self.normalizer.jitter_size if self.normalizer is not None else 0
            draws = draw_augment(self.augment, example_generators(rng, batch.shape[0]), stain_size)
        if self.normalizer is not None:
            jitter = next((d.value for d in draws if d.letter == "n"), None)
            batch = self.normalizer.transform(batch, jitter=jitter)
        if draws:
            batch = apply_augment(batch, draws)
        out = restore_rank(batch, single)
        if self.transform is not None:
            out = self.transform(out)
        if self.standardize is not None:
            out = standardize(out, self.standardize)
        return out

    def __call__(self, element: Any, rng: np.random.Generator | None = None) -> Any:
        """Preprocess one Grain element: a dict with an "image" entry, or an image array."""
        if isinstance(element, dict):
            if IMAGE_KEY not in element:
                raise KeyError(f"element has no {IMAGE_KEY!r} entry; keys are {sorted(element)}")
            return {**element, IMAGE_KEY: self.images(element[IMAGE_KEY], rng)}
        return self.images(element, rng)


def preprocess(
    dataset: grain.MapDataset | grain.IterDataset, *, seed: int = 0, **settings: Any
) -> grain.MapDataset | grain.IterDataset:
    """``dataset`` with the preprocessing chain applied to every element (module docstring);
    ``settings`` are `Preprocessor`'s keywords (``crop_left``, ``crop_width``, ``resize_target``,
    ``normalizer``, ``augment``, ``transform``, ``standardize``) with its defaults.

    With augmentation this is Grain's ``random_map`` seeded by ``seed`` (the generator of element i
    depends on (seed, i) and is restored with the iterator state), otherwise a plain ``map``.
    """
    if not isinstance(dataset, grain.MapDataset | grain.IterDataset):
        raise TypeError(
            f"dataset must be a grain MapDataset or IterDataset, got {type(dataset).__name__}"
        )
    chain = Preprocessor(**settings)
    if chain.is_random:
        return dataset.random_map(chain, seed=seed)
    return dataset.map(chain)


def preprocess_images(
    images: np.ndarray, *, rng: np.random.Generator | int | None = None, **settings: Any
) -> np.ndarray:
    """The same chain as a plain function on an image or batch, without Grain (``settings`` as
    for `preprocess`).

    ``rng`` is a numpy Generator or an int seed (needed when augmenting).
    """
    chain = Preprocessor(**settings)
    generator = np.random.default_rng(rng) if isinstance(rng, int) else rng
    return chain.images(images, generator)
