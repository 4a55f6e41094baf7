"""`Interleaver`: weighted, clipped, sharded batches of decoded tiles from many TFRecords.

The Python side validates arguments, resolves defaults (rank from JAX, threads from the CPU
count), reads the record indexes and turns label dicts into arrays; the native loader does
the rest, one call per batch with the GIL released. See ``jaxwsi._native.NativeLoader`` and
``rust/core/src/plan.rs`` for the sampling semantics.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxwsi import _native
from jaxwsi.io.index import load_indexes

ON_ERROR_MODES = ("raise", "skip")
_STATE_KEYS = ("epoch", "step", "draws")


def default_rank_and_replicas() -> tuple[int, int]:
    """(jax.process_index(), jax.process_count()): one replica per JAX process."""
    import jax

    return jax.process_index(), jax.process_count()


def default_num_threads(num_workers: int) -> int:
    """The CPUs this process may use, split evenly over the workers sharing it."""
    has_affinity = hasattr(os, "sched_getaffinity")  # not on macOS
    cpus = len(os.sched_getaffinity(0)) if has_affinity else os.cpu_count() or 1
    return max(1, cpus // max(1, num_workers))


def record_tables(paths: Sequence[str]) -> list[np.ndarray]:
    """Each file's index as int64 [N, 2] (offset, framed length), from the Slideflow-compatible
    ``.index.npz`` beside it (built in parallel when missing or stale; see
    `jaxwsi.io.load_indexes`, which never writes into read-only folders)."""
    return [np.asarray(r, dtype=np.int64).reshape(-1, 2) for r in load_indexes(paths)]


def per_file(value: Any, paths: Sequence[str], name: str, kind: type) -> list[Any] | None:
    """`value` as one entry per file: None, a scalar for all, a sequence, or a dict by path."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        by_path = {str(Path(k)): v for k, v in value.items()}
        missing = [p for p in paths if str(Path(p)) not in by_path]
        if missing:
            raise ValueError(f"{name} has no entry for {missing[0]}")
        values = [by_path[str(Path(p))] for p in paths]
    elif isinstance(value, (int, float, np.integer, np.floating)):
        values = [value] * len(paths)
    else:
        values = list(value)
        if len(values) != len(paths):
            raise ValueError(f"{name} has {len(values)} entries but there are {len(paths)} files")
    out = []
    for path, v in zip(paths, values, strict=True):
        if kind is int and (isinstance(v, bool) or not float(v).is_integer()):
            raise ValueError(f"{name} of {path} is {v!r}; it must be a whole number")
        v = kind(v)
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} of {path} is {v!r}; it must be finite and >= 0")
        out.append(v)
    return out


def label_table(labels: Mapping[str, Any]) -> tuple[list[str], np.ndarray]:
    """Slide names and a numeric array whose row i is the label of slide i."""
    names = [str(k) for k in labels]
    try:
        table = np.asarray([labels[k] for k in labels])
    except ValueError as err:
        raise ValueError(f"labels must all have the same shape: {err}") from err
    if table.dtype.kind not in "biuf":
        raise ValueError(f"labels must be int, float or sequences of them, not {table.dtype}")
    return names, table


class Interleaver:
    """Batches of tiles from many TFRecords: weighted, clipped, sharded, decoded in Rust.

    Iterating yields dicts of numpy arrays: ``image`` (uint8 [B, H, W, 3] RGB, or an object
    array of encoded bytes when ``decode=False``), ``label`` when ``labels`` (slide name →
    int, float or sequence, looked up by each record's ``slide`` feature) is given, ``slide``
    with ``incl_slidenames``, ``loc_x``/``loc_y`` with ``incl_loc``.

    - ``weights``: per-file sampling weights (sequence or dict by path); ``clip``: per-file
      maximum record count (int for all, sequence or dict), a seeded fixed subset.
    - ``infinite=True``: files drawn ∝ weight, a fresh record order per pass, never ends.
      ``infinite=False``: each clipped record exactly once per epoch across all shards; one
      ``for`` loop is one epoch and the next loop is the next epoch (reshuffled). With
      ``drop_remainder`` (default) every shard yields ``len()`` batches, that of the smallest
      shard, so a few records (< batch_size + 1 per shard) are left out of each epoch; use
      ``drop_remainder=False`` to read every record (the last batch is then shorter).
    - ``shuffle=False``: records in stored order; in finite mode files one after another.
    - Shard = ``rank * num_workers + worker`` of ``num_replicas * num_workers``; rank and
      num_replicas default to ``jax.process_index()`` / ``jax.process_count()``.
    - ``on_error="raise"`` stops at a bad record (naming file and record); ``"skip"`` leaves
      it out, counts it in ``skipped`` and warns.

    The stream is a pure function of (files, weights, clip, seed, epoch, shard);
    ``get_state()``/``set_state()`` resume it exactly. Instances pickle (the native loader is
    rebuilt lazily, at the pickled position).
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        labels: Mapping[str, Any] | None = None,
        weights: Sequence[float] | Mapping[str, float] | None = None,
        clip: int | Sequence[int] | Mapping[str, int] | None = None,
        batch_size: int = 64,
        infinite: bool = True,
        shuffle: bool = True,
        seed: int = 0,
        rank: int | None = None,
        num_replicas: int | None = None,
        worker: int = 0,
        num_workers: int = 1,
        decode: bool = True,
        incl_slidenames: bool = False,
        incl_loc: bool = False,
        num_threads: int | None = None,
        drop_remainder: bool = True,
        on_error: str = "raise",
    ) -> None:
        paths = [os.fspath(p) for p in paths]
        if not paths:
            raise ValueError("Interleaver needs at least one TFRecord path")
        if on_error not in ON_ERROR_MODES:
            raise ValueError(f"on_error must be one of {ON_ERROR_MODES}, not {on_error!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        if rank is None or num_replicas is None:
            default_rank, default_replicas = default_rank_and_replicas()
            rank = default_rank if rank is None else rank
            num_replicas = default_replicas if num_replicas is None else num_replicas
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is out of range for {num_replicas} replicas")
        if not 0 <= worker < num_workers:
            raise ValueError(f"worker {worker} is out of range for {num_workers} workers")
        weight_list = per_file(weights, paths, "weights", float)
        if weight_list is not None and infinite and not any(weight_list):
            raise ValueError("all weights are zero; nothing can be drawn")
        self._args: dict[str, Any] = dict(
            paths=paths,
            labels=None if labels is None else dict(labels),
            weights=weight_list,
            clip=per_file(clip, paths, "clip", int),
            batch_size=int(batch_size),
            infinite=bool(infinite),
            shuffle=bool(shuffle),
            seed=int(seed),
            rank=int(rank),
            num_replicas=int(num_replicas),
            worker=int(worker),
            num_workers=int(num_workers),
            decode=bool(decode),
            incl_slidenames=bool(incl_slidenames),
            incl_loc=bool(incl_loc),
            num_threads=int(num_threads or default_num_threads(num_workers)),
            drop_remainder=bool(drop_remainder),
            on_error=on_error,
        )
        if self._args["labels"] is not None:
            self._label_names, self._label_table = label_table(self._args["labels"])
        self._native_loader: Any = None
        self._pending_state: dict[str, Any] | None = None
        self.skipped = 0

    @property
    def shard(self) -> int:
        """Global shard id: ``rank * num_workers + worker``."""
        return self._args["rank"] * self._args["num_workers"] + self._args["worker"]

    @property
    def num_shards(self) -> int:
        """``num_replicas * num_workers``."""
        return self._args["num_replicas"] * self._args["num_workers"]

    @property
    def args(self) -> dict[str, Any]:
        """The resolved constructor arguments (a copy)."""
        return dict(self._args)

    def _loader(self) -> Any:
        if self._native_loader is None:
            a = self._args
            self._native_loader = _native.NativeLoader(
                a["paths"],
                record_tables(a["paths"]),
                weights=a["weights"],
                clip=a["clip"],
                seed=a["seed"],
                shard=self.shard,
                num_shards=self.num_shards,
                infinite=a["infinite"],
                shuffle=a["shuffle"],
                batch_size=a["batch_size"],
                drop_remainder=a["drop_remainder"],
                decode=a["decode"],
                label_slides=self._label_names if a["labels"] is not None else None,
                skip_errors=a["on_error"] == "skip",
                num_threads=a["num_threads"],
            )
            if self._pending_state is not None:
                self._apply_state(self._pending_state)
                self._pending_state = None
        return self._native_loader

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        loader = self._loader()
        raw = loader.next_batch()
        if raw is None:
            loader.start_epoch(loader.epoch + 1)
            raise StopIteration
        return self._to_output(raw)

    def _to_output(self, raw: dict[str, Any]) -> dict[str, np.ndarray]:
        if raw["skipped"]:
            self.skipped += len(raw["skipped"])
            warnings.warn(
                f"skipped {len(raw['skipped'])} bad record(s), first: {raw['skipped'][0]}",
                RuntimeWarning,
                stacklevel=3,
            )
        image = raw["image"]
        if not self._args["decode"]:
            encoded = np.empty(len(image), dtype=object)
            encoded[:] = image
            image = encoded
        out: dict[str, np.ndarray] = {"image": image}
        if self._args["labels"] is not None:
            out["label"] = self._label_table[raw["label_row"]]
        if self._args["incl_slidenames"]:
            out["slide"] = np.asarray(raw["slide"], dtype=str)
        if self._args["incl_loc"]:
            out["loc_x"] = raw["loc"][:, 0].copy()
            out["loc_y"] = raw["loc"][:, 1].copy()
        return out

    def shard_records(self) -> tuple[np.ndarray, np.ndarray]:
        """(file index, record index) of every record of this shard, file by file (clipped)."""
        files, records = self._loader().shard_items()
        return np.asarray(files, dtype=np.int64), np.asarray(records, dtype=np.int64)

    def load_records(self, files: Sequence[int], records: Sequence[int]) -> dict[str, np.ndarray]:
        """The given (file, record) pairs as one batch, in order (random access)."""
        raw = self._loader().load([int(f) for f in files], [int(r) for r in records])
        return self._to_output(raw)

    def __len__(self) -> int:
        """Batches per epoch in this shard (finite streams only; before any skipped records)."""
        if self._args["infinite"]:
            raise TypeError("an infinite Interleaver has no length")
        return int(self._loader().batches_per_epoch)

    @property
    def num_records(self) -> int:
        """Records per epoch in this shard (after clip)."""
        return int(self._loader().records_per_epoch)

    def get_state(self) -> dict[str, Any]:
        """The stream position as a small JSON-serializable dict."""
        if self._native_loader is None and self._pending_state is not None:
            return dict(self._pending_state)
        epoch, step, draws = self._loader().state()
        return {"epoch": epoch, "step": step, "draws": list(draws)}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Moves to a position from `get_state()` of an Interleaver with the same arguments."""
        missing = [k for k in _STATE_KEYS if k not in state]
        if missing:
            raise ValueError(f"Interleaver state lacks {missing}; got keys {sorted(state)}")
        self._apply_state(state)

    def _apply_state(self, state: Mapping[str, Any]) -> None:
        draws = [int(d) for d in state["draws"]]
        self._loader().set_state(int(state["epoch"]), int(state["step"]), draws)

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k != "_native_loader"}
        state["_pending_state"] = self.get_state() if self._native_loader else self._pending_state
        state["_native_loader"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        a = self._args
        return (
            f"Interleaver({len(a['paths'])} files, batch_size={a['batch_size']}, "
            f"infinite={a['infinite']}, shard={self.shard}/{self.num_shards}, seed={a['seed']})"
        )
