"""`IndexedSource`: map-style random access to tiles over the global record index.

Slideflow's ``IndexedInterleaver``, done for Grain: element ``i`` is the ``i``-th record of this
replica's shard of the clipped records (file by file), so ``grain.MapDataset.source(src)``
gives global shuffling (``.shuffle(seed)``), weighted mixing and slicing to Grain. Records are
read, verified and decoded natively with the GIL released; ``__getitems__`` loads many in one
call. Each thread gets its own native loader, so Grain's read threads do not serialize.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxwsi.io.interleaver import Interleaver
from jaxwsi.io.settings import LoaderSettings

# Settings an IndexedSource fixes: one record per call, in stored order, every record once.
_FIXED: dict[str, Any] = dict(
    infinite=False, shuffle=False, batch_size=1, num_threads=1, drop_remainder=False
)


class IndexedSource:
    """Random access to the tiles of ``paths``: a ``grain.sources.RandomAccessDataSource``.

    ``clip`` (int, sequence or dict by path) keeps a seeded fixed subset per file;
    ``rank``/``num_replicas`` (default: the JAX process) select this replica's shard, whose
    sizes differ by at most one record across replicas. Elements are dicts: ``image``
    (uint8 [H, W, 3], or the encoded bytes when ``decode=False``), and ``label``, ``slide``,
    ``loc_x``, ``loc_y`` as for `Interleaver`. Other options are `LoaderSettings` fields
    (``seed``, ``decode``, ``incl_slidenames``, ``incl_loc``, ``on_error``, ...); the order,
    batch size and thread count are fixed here.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        labels: Mapping[str, Any] | None = None,
        clip: int | Sequence[int] | Mapping[str, int] | None = None,
        settings: LoaderSettings | None = None,
        **options: Any,
    ) -> None:
        settings = LoaderSettings.from_options(settings, **options)
        settings = dataclasses.replace(settings, **_FIXED)
        self._interleaver = Interleaver(paths, labels=labels, clip=clip, settings=settings)
        self._files, self._records = self._interleaver.shard_records()
        self._local = threading.local()

    def _loader(self) -> Interleaver:
        loader = getattr(self._local, "loader", None)
        if loader is None:
            loader = self._local.loader = copy.copy(self._interleaver)
        return loader

    def __len__(self) -> int:
        return len(self._files)

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Loads many elements in one native call."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"index out of range for an IndexedSource of {len(self)} records")
        idx = np.where(idx < 0, idx + len(self), idx)
        batch = self._loader().load_records(self._files[idx], self._records[idx])
        return [{key: value[i] for key, value in batch.items()} for i in range(len(idx))]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_local"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def __repr__(self) -> str:
        il, s = self._interleaver, self._interleaver.settings
        return (
            f"IndexedSource(paths={il.paths!r}, clip={il.clip!r}, seed={s.seed}, "
            f"shard={s.rank}/{s.num_replicas}, decode={s.decode})"
        )
