"""One seeded numpy generator per example of a batch, derived from the element's generator.

Grain's ``random_map`` hands each element (here: a batch) a generator seeded from
``(seed, element index in the stream)``; its state is part of the iterator's checkpoint. Drawing one
key from it and seeding ``SeedSequence([key, position])`` per example makes every example's random
choices a function of ``(seed, element index, position in batch)`` only, so a restored pipeline
reproduces them exactly and examples never share a stream.
"""

from __future__ import annotations

import numpy as np


def example_generators(rng: np.random.Generator, count: int) -> list[np.random.Generator]:
    """``count`` independent generators for the examples of one element, drawn from ``rng``."""
    key = int(rng.integers(0, 2**63 - 1, dtype=np.int64))
    return [np.random.default_rng([key, position]) for position in range(count)]
