"""Training patches: the Allen Segmenter's buffer of ``PatchPerBuffer`` random patches.

Patches are spread evenly over the images (``PatchPerBuffer // n`` each, the remainder to the
first images of a shuffled order), corners drawn uniformly so that the *output* window lies in
the image; the input window is the output window grown by the context margin
``(size_in − size_out) / 2``, mirrored at the image border (labels there get weight 0). A buffer
is a pure function of ``(seed, buffer index)``: the trainer redraws it every ``epoch_shuffle``
epochs, and a resumed run rebuilds exactly the buffer it was using.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from jaxwsi.segment.augment import augment_patch
from jaxwsi.segment.config import AugmentConfig
from jaxwsi.segment.data import LoadedSample

Batch = dict[str, np.ndarray]


def _generator(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


@dataclass
class _Padded:
    image: np.ndarray
    label: np.ndarray
    weight: np.ndarray
    room: tuple[int, ...]  # corner range of the output window per axis


class PatchSampler:
    """Buffers of (image, label, weight) patches from ``samples``.

    ``augment=None`` draws plain patches (validation). ``workers`` threads cut and augment them;
    each patch has its own generator, so the result does not depend on ``workers``.
    """

    def __init__(
        self,
        samples: Sequence[LoadedSample],
        size_in: Sequence[int],
        size_out: Sequence[int],
        *,
        patches: int,
        seed: int,
        augment: AugmentConfig | None = None,
        workers: int = 1,
    ) -> None:
        if not samples:
            raise ValueError("PatchSampler needs at least one image")
        self.size_in = tuple(size_in)
        self.size_out = tuple(size_out)
        self.patches = patches
        self.seed = seed
        self.augment = augment
        self.workers = workers
        margin = [(i - o) // 2 for i, o in zip(self.size_in, self.size_out, strict=True)]
        self._padded = [self._pad(s, margin) for s in samples]

    def _pad(self, sample: LoadedSample, margin: Sequence[int]) -> _Padded:
        spatial = sample.label.shape
        grow = [max(o - d, 0) for o, d in zip(self.size_out, spatial, strict=True)]
        pads = [(m, m + g) for m, g in zip(margin, grow, strict=True)]
        image = np.pad(sample.image, [*pads, (0, 0)], mode="symmetric")
        label = np.pad(sample.label, pads)
        weight = np.pad(sample.weight, pads)  # 0: context and padding are never scored
        room = tuple(d + g - o + 1 for d, g, o in zip(spatial, grow, self.size_out, strict=True))
        return _Padded(image, label, weight, room)

    def assignment(self, buffer: int) -> np.ndarray:
        """Image index of each patch of ``buffer``: evenly spread, remainder to the first images
        of a shuffled order."""
        n = len(self._padded)
        order = _generator(self.seed, 0, buffer).permutation(n)
        counts = np.full(n, self.patches // n)
        counts[: self.patches % n] += 1
        return np.repeat(order, counts)

    def _patch(self, buffer: int, index: int, image_index: int) -> tuple[np.ndarray, ...]:
        rng = _generator(self.seed, 1, buffer, index)
        padded = self._padded[image_index]
        corner = [int(rng.integers(r)) for r in padded.room]
        window = tuple(slice(c, c + s) for c, s in zip(corner, self.size_in, strict=True))
        image, label, weight = padded.image[window], padded.label[window], padded.weight[window]
        if self.augment is not None:
            image, label, weight = augment_patch(image, label, weight, self.augment, rng)
        margin = [(i - o) // 2 for i, o in zip(self.size_in, self.size_out, strict=True)]
        crop = tuple(slice(m, m + o) for m, o in zip(margin, self.size_out, strict=True))
        return image, label[crop], weight[crop]

    def buffer(self, buffer: int) -> Batch:
        """Patches of buffer number ``buffer``: image (P, *size_in, C) float32, label
        (P, *size_out) int32, weight (P, *size_out) float32."""
        images = self.assignment(buffer)
        args = [(buffer, i, int(k)) for i, k in enumerate(images)]
        if self.workers > 1:
            with ThreadPoolExecutor(self.workers) as pool:
                parts = list(pool.map(lambda a: self._patch(*a), args))
        else:
            parts = [self._patch(*a) for a in args]
        image, label, weight = (np.stack(p) for p in zip(*parts, strict=True))
        return {
            "image": image.astype(np.float32),
            "label": label.astype(np.int32),
            "weight": weight.astype(np.float32),
        }


def epoch_order(seed: int, epoch: int, buffer_size: int, length: int) -> np.ndarray:
    """Buffer positions of the ``length`` patches of ``epoch``: consecutive random permutations
    of the buffer (an epoch longer than the buffer goes round it again)."""
    rounds = -(-length // buffer_size)
    order = [_generator(seed, 2, epoch, r).permutation(buffer_size) for r in range(rounds)]
    return np.concatenate(order)[:length]
