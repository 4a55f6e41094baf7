"""`LoaderSettings`: every option of the interleaving loader, each default in this one place.

`Interleaver`, `jaxwsi.pipeline.interleaved_dataset`, `IndexedSource` and
`jaxwsi.Dataset.interleaver`/``grain`` take these options as keyword arguments (or a whole
``settings=LoaderSettings(...)``) and pass the object on whole, down to the native loader, which
reads the fields it needs by name. What a loader reads (paths, labels, weights, clip) is data,
not settings, and is passed beside it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

OnError = Literal["raise", "skip"]
ON_ERROR_MODES: tuple[str, ...] = ("raise", "skip")


def default_rank_and_replicas() -> tuple[int, int]:
    """(jax.process_index(), jax.process_count()): one replica per JAX process."""
    import jax

    return jax.process_index(), jax.process_count()


def default_num_threads(num_workers: int) -> int:
    """The CPUs this process may use, split evenly over the workers sharing it."""
    has_affinity = hasattr(os, "sched_getaffinity")  # not on macOS
    cpus = len(os.sched_getaffinity(0)) if has_affinity else os.cpu_count() or 1
    return max(1, cpus // max(1, num_workers))


@dataclass(frozen=True)
class LoaderSettings:
    """How batches are drawn, sharded, decoded and what happens to bad records.

    - ``infinite=True``: files drawn ∝ weight, a fresh record order per pass, never ends.
      ``infinite=False``: each clipped record exactly once per epoch across all shards.
    - ``drop_remainder`` (finite streams only; default False, every record is read, the last
      batch may be shorter): True makes every shard yield the same number of full batches (that
      of the smallest shard), which data-parallel hosts need to run equal steps.
    - ``shuffle=False``: records in stored order; in finite mode files one after another.
    - Shard = ``rank * num_workers + worker`` of ``num_replicas * num_workers``; ``rank`` and
      ``num_replicas`` default (None) to ``jax.process_index()`` / ``jax.process_count()``,
      ``num_threads`` (None) to this process's CPUs split over the workers.
    - ``on_error="raise"`` stops at a bad record or file, naming every damaged file;
      ``"skip"`` leaves bad records out and indexes damaged files up to their first bad record.
    """

    batch_size: int = 64
    infinite: bool = True
    shuffle: bool = True
    seed: int = 0
    rank: int | None = None
    num_replicas: int | None = None
    worker: int = 0
    num_workers: int = 1
    decode: bool = True
    incl_slidenames: bool = False
    incl_loc: bool = False
    num_threads: int | None = None
    drop_remainder: bool = False
    on_error: OnError = "raise"

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR_MODES:
            raise ValueError(f"on_error must be one of {ON_ERROR_MODES}, not {self.on_error!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {self.batch_size}")
        if self.num_workers < 1 or not 0 <= self.worker < self.num_workers:
            raise ValueError(f"worker {self.worker} is out of range for {self.num_workers} workers")
        rank, replicas = self.rank, self.num_replicas
        if rank is not None and replicas is not None and not 0 <= rank < replicas:
            raise ValueError(f"rank {rank} is out of range for {replicas} replicas")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, not {self.num_threads}")

    @classmethod
    def from_options(cls, settings: LoaderSettings | None = None, **options: Any) -> LoaderSettings:
        """``settings`` (default: all defaults) with ``options`` (field names) replaced; an
        unknown option is a TypeError listing the known ones."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise TypeError(f"unknown loader option(s) {unknown}; the options are {sorted(names)}")
        return dataclasses.replace(settings or cls(), **options)

    def resolved(self) -> LoaderSettings:
        """The same settings with rank, num_replicas and num_threads filled in."""
        rank, replicas = self.rank, self.num_replicas
        if rank is None or replicas is None:
            default_rank, default_replicas = default_rank_and_replicas()
            rank = default_rank if rank is None else rank
            replicas = default_replicas if replicas is None else replicas
        threads = self.num_threads or default_num_threads(self.num_workers)
        return dataclasses.replace(self, rank=rank, num_replicas=replicas, num_threads=threads)

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict (JSON-serializable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LoaderSettings:
        """The inverse of `as_dict` (unknown keys are a TypeError)."""
        return cls.from_options(None, **values)
