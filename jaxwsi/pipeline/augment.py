"""Tile augmentation in numpy, vectorized over a batch, one letter per step (Slideflow's letters).

``x`` horizontal flip (p 0.5), ``y`` vertical flip (p 0.5), ``r`` rotation by k·90° (k uniform in
0..3), ``j`` JPEG recompression (p 0.5, quality uniform in 50..100), ``b`` Gaussian blur (p 0.1, σ
uniform in 0.5..2.0), ``n`` stain augmentation (done by the normalizer, see
``jaxwsi.pipeline.preprocess``). ``augment=True`` means ``"xyrjb"``. Steps run in the order written.

Random choices are drawn first, per example, from that example's own generator (every letter draws
the same numbers whether or not it then applies), then applied to the whole batch at once. So the
draws are a pure function of the generators, and the numpy and JAX versions can be compared on the
same draws.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from jaxwsi.norm.images import as_image_batch, restore_rank
from jaxwsi.pipeline.example_rng import example_generators

AUGMENT_LETTERS = "xyrjbn"
DEFAULT_AUGMENT = "xyrjb"
FLIP_PROBABILITY = 0.5
JPEG_PROBABILITY = 0.5
JPEG_QUALITY_RANGE = (50, 100)
BLUR_PROBABILITY = 0.1
BLUR_SIGMA_RANGE = (0.5, 2.0)


def parse_augment(augment: str | bool | None) -> str:
    """The augment letters for ``augment`` (True → "xyrjb"; False/None/"" → ""), validated."""
    if augment is True:
        return DEFAULT_AUGMENT
    if augment is False or augment is None:
        return ""
    if not isinstance(augment, str):
        raise TypeError(
            f"augment must be a string of letters or a bool, got {type(augment).__name__}"
        )
    unknown = sorted(set(augment) - set(AUGMENT_LETTERS))
    if unknown:
        raise ValueError(
            f"unknown augmentation letter(s) {unknown} in {augment!r}; "
            f"valid letters are {AUGMENT_LETTERS!r} (flips x y, rotate r, JPEG j, blur b, stain n)"
        )
    return augment


@dataclass(frozen=True)
class AugmentDraw:
    """One letter's random choices for a batch.

    ``apply`` is bool [B]; ``value`` is the rotation k, JPEG quality or blur sigma [B], the stain
    jitter [B, jitter_size] for ``n``, and unused zeros for flips.
    """

    letter: str
    apply: np.ndarray
    value: np.ndarray


def _draw_one(letter: str, rng: np.random.Generator, stain_size: int) -> tuple[bool, np.ndarray]:
    if letter in "xy":
        return bool(rng.random() < FLIP_PROBABILITY), np.zeros(())
    if letter == "r":
        k = rng.integers(0, 4)
        return bool(k != 0), np.asarray(k)
    if letter == "j":
        apply = rng.random() < JPEG_PROBABILITY
        low, high = JPEG_QUALITY_RANGE
        return bool(apply), np.asarray(rng.integers(low, high + 1))
    if letter == "b":
        apply = rng.random() < BLUR_PROBABILITY
        return bool(apply), np.asarray(rng.uniform(*BLUR_SIGMA_RANGE))
    return True, rng.standard_normal(stain_size).astype(np.float32)


def draw_augment(
    augment: str, rngs: Sequence[np.random.Generator], stain_jitter_size: int = 0
) -> list[AugmentDraw]:
    """Draw every letter's choices for each example from its own generator (one per example)."""
    augment = parse_augment(augment)
    if "n" in augment and stain_jitter_size <= 0:
        raise ValueError("stain augmentation 'n' needs a stain normalizer (jitter size > 0)")
    per_example = [
        [_draw_one(letter, rng, stain_jitter_size) for letter in augment] for rng in rngs
    ]
    draws = []
    for index, letter in enumerate(augment):
        choices = [example[index] for example in per_example]
        draws.append(
            AugmentDraw(
                letter=letter,
                apply=np.array([apply for apply, _ in choices], dtype=bool),
                value=np.stack([value for _, value in choices]),
            )
        )
    return draws


def flip_horizontal(images: np.ndarray, apply: np.ndarray) -> np.ndarray:
    """Mirror left–right the images ``[B, H, W, C]`` where ``apply`` is True."""
    return np.where(apply[:, None, None, None], images[:, :, ::-1], images)


def flip_vertical(images: np.ndarray, apply: np.ndarray) -> np.ndarray:
    """Mirror top–bottom the images ``[B, H, W, C]`` where ``apply`` is True."""
    return np.where(apply[:, None, None, None], images[:, ::-1], images)


def rotate90(images: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Rotate each square image ``[B, S, S, C]`` counter-clockwise by ``k[b]`` quarter turns."""
    if images.shape[1] != images.shape[2] and np.any(k % 2 == 1):
        raise ValueError(
            f"rotation 'r' needs square images, got {images.shape[1]}×{images.shape[2]}"
        )
    out = images.copy()
    for turns in (1, 2, 3):
        chosen = np.flatnonzero(k == turns)
        if chosen.size:
            out[chosen] = np.rot90(images[chosen], turns, axes=(1, 2))
    return out


def jpeg_recompress(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode one RGB uint8 image as JPEG at ``quality`` and decode it again."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Blur one RGB uint8 image spatially by a Gaussian of std ``sigma`` px (reflected edges)."""
    blurred = ndimage.gaussian_filter(
        image.astype(np.float32), sigma=(sigma, sigma, 0), mode="reflect"
    )
    return np.clip(np.round(blurred), 0, 255).astype(np.uint8)


def apply_augment(images: np.ndarray, draws: Sequence[AugmentDraw]) -> np.ndarray:
    """Apply drawn augmentations to an RGB uint8 image or batch, in order (``n`` is skipped)."""
    batch, single = as_image_batch(images)
    for draw in draws:
        if draw.apply.shape != (batch.shape[0],):
            raise ValueError(
                f"draws are for {draw.apply.shape[0]} images, batch has {batch.shape[0]}"
            )
        if draw.letter == "x":
            batch = flip_horizontal(batch, draw.apply)
        elif draw.letter == "y":
            batch = flip_vertical(batch, draw.apply)
        elif draw.letter == "r":
            batch = rotate90(batch, draw.value)
        elif draw.letter in "jb":
            batch = batch.copy()
            step = jpeg_recompress if draw.letter == "j" else gaussian_blur
            for index in np.flatnonzero(draw.apply):
                batch[index] = step(batch[index], draw.value[index])
    return restore_rank(batch, single)


def augment_images(
    images: np.ndarray, augment: str | bool, rng: np.random.Generator | int
) -> np.ndarray:
    """Augment an RGB uint8 image or batch by letters ``augment`` (not ``n``), seeded by ``rng``."""
    augment = parse_augment(augment)
    if "n" in augment:
        raise ValueError(
            "stain augmentation 'n' runs inside the normalizer: use jaxwsi.pipeline.preprocess"
        )
    batch, single = as_image_batch(images)
    generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    draws = draw_augment(augment, example_generators(generator, batch.shape[0]))
    return restore_rank(apply_augment(batch, draws), single)
