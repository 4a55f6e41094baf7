"""A Grain ``IterDataset`` over the native interleaving loader.

Each element is one batch dict from ``jaxwsi.io.Interleaver``. The iterator state is the
loader's JSON-serializable position, so ``grain.checkpoint`` (through orbax) restores the
exact stream. The dataset pickles (Grain's ``mp_prefetch`` spawns worker processes) and
supports Grain's in-place slicing: worker ``i`` of ``n`` becomes loader worker
``worker * n + i`` of ``num_workers * n``, so workers read disjoint shards.

Grain reads absl flags in ``mp_prefetch``; in a plain script nobody parsed them, so building the
dataset marks them parsed (with their defaults) when nothing else has.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any

import grain
import numpy as np

from jaxwsi.io.index import Damaged
from jaxwsi.io.interleaver import Interleaver
from jaxwsi.io.settings import LoaderSettings

Batch = dict[str, np.ndarray]


def _mark_absl_flags_parsed() -> None:
    """Grain's multiprocessing reads absl flags; outside ``absl.app.run`` they are unparsed and
    reading one raises. Marking them parsed keeps every default (``app.run`` still parses)."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


class InterleavedIterator(grain.DatasetIterator):
    """Iterator over an `Interleaver`; its state is the interleaver's position."""

    def __init__(self, interleaver: Interleaver) -> None:
        super().__init__()
        self._interleaver = interleaver

    def __next__(self) -> Batch:
        return next(self._interleaver)

    def get_state(self) -> dict[str, Any]:
        return self._interleaver.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self._interleaver.set_state(state)


class InterleavedDataset(grain.IterDataset):
    """Batches from `Interleaver(paths, **kwargs)` as a Grain source dataset."""

    def __init__(self, paths: Sequence[str | os.PathLike[str]], **kwargs: Any) -> None:
        super().__init__()
        _mark_absl_flags_parsed()
        # Built now so bad arguments fail here and rank/replicas resolve in the parent process.
        self._interleaver = Interleaver(paths, **kwargs)

    @property
    def settings(self) -> LoaderSettings:
        """The resolved settings of the underlying `Interleaver`."""
        return self._interleaver.settings

    @property
    def damaged(self) -> list[Damaged]:
        """Damaged files left partly out under ``on_error="skip"`` (see `Interleaver.damaged`)."""
        return self._interleaver.damaged

    @property
    def interleaver_args(self) -> dict[str, Any]:
        """The data and resolved settings of the underlying `Interleaver`, as one dict."""
        return self._interleaver.args

    def set_slice(self, sl: slice, sequential_slice: bool = False) -> None:
        """Grain's worker slicing (``slice(i, None, n)``): become worker i of n, in place."""
        del sequential_slice  # shards are a partition either way
        start, step = sl.start or 0, sl.step or 1
        if sl.stop is not None or not 0 <= start < step:
            raise ValueError(f"InterleavedDataset supports only slice(i, None, n), not {sl}")
        s = self._interleaver.settings
        assert s.num_threads is not None  # resolved
        self._interleaver = self._interleaver.with_settings(
            worker=s.worker * step + start,
            num_workers=s.num_workers * step,
            num_threads=max(1, s.num_threads // step),
        )

    def __iter__(self) -> InterleavedIterator:
        return InterleavedIterator(copy.copy(self._interleaver))

    def __str__(self) -> str:
        return f"InterleavedDataset({self._interleaver!r})"


def interleaved_dataset(
    paths: Sequence[str | os.PathLike[str]], **kwargs: Any
) -> InterleavedDataset:
    """A ``grain.IterDataset`` of batch dicts from ``jaxwsi.io.Interleaver(paths, **kwargs)``
    (``labels``, ``weights``, ``clip``, and `jaxwsi.io.LoaderSettings` fields or ``settings=``).

    Compose it with Grain as usual, e.g. ``.map(fn)``, ``.mp_prefetch(...)`` and
    ``grain.experimental.device_put(ds, NamedSharding(mesh, P("data")))``; checkpoint its
    iterator with ``grain.checkpoint.CheckpointSave`` / ``CheckpointRestore``.
    """
    return InterleavedDataset(paths, **kwargs)
