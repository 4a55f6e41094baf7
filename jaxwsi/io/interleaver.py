"""`Interleaver`: weighted, clipped, sharded batches of decoded tiles from many TFRecords.

The Python side validates arguments, resolves the `LoaderSettings` (rank from JAX, threads
from the CPU count), reads the record indexes and turns label dicts into arrays; the native
loader does the rest, one call per batch with the GIL released. See
``jaxwsi._native.NativeLoader`` and ``rust/core/src/plan.rs`` for the sampling semantics.
"""

from __future__ import annotations

import dataclasses
import math
import os
import resource
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxwsi import _native
from jaxwsi.io.index import Damaged, load_indexes_and_damage, warn_damaged
from jaxwsi.io.settings import LoaderSettings

_STATE_KEYS = ("epoch", "step", "draws")
# The native loader keeps up to this many TFRecords open (rust/core/src/loader.rs), plus what
# the rest of the process (Grain, JAX, logs) holds.
_NATIVE_OPEN_FILES = 256
_OTHER_OPEN_FILES = 128


def ensure_open_file_limit(num_files: int) -> None:
    """Raises the soft RLIMIT_NOFILE toward the hard limit when the loader may need more open
    files than it allows (macOS starts at 256); warns when even the hard limit is too low (the
    loader then fails with an error saying so if it does run out)."""
    needed = min(num_files, _NATIVE_OPEN_FILES) + _OTHER_OPEN_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        warnings.warn(
            f"the open-file limit is {target} (hard limit); the loader over {num_files} "
            f"TFRecords may need {needed}: raise it (`ulimit -n {needed}`)",
            RuntimeWarning,
            stacklevel=3,
        )


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
    - Options (``batch_size``, ``infinite``, ``shuffle``, ``seed``, ``rank``, ``num_workers``,
      ``drop_remainder``, ``on_error``, ...) are the fields of `LoaderSettings`, where their
      defaults and meaning are documented; pass them as keywords or ``settings=`` whole.
    - ``infinite=False``: one ``for`` loop is one epoch over every clipped record of the shard
      (the last batch may be shorter unless ``drop_remainder=True``); the next loop is the next
      epoch, reshuffled.
    - ``on_error="raise"`` stops at a bad record (naming file and record) and, when indexes
      are built, at damaged files (naming every one); ``"skip"`` leaves bad records out
      (counted in ``skipped``, with a warning), indexes damaged files up to their first bad
      record and lists them in ``damaged`` (with a warning).

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
        settings: LoaderSettings | None = None,
        **options: Any,
    ) -> None:
        files = [os.fspath(p) for p in paths]
        if not files:
            raise ValueError("Interleaver needs at least one TFRecord path")
        self.settings = LoaderSettings.from_options(settings, **options).resolved()
        weight_list = per_file(weights, files, "weights", float)
        if weight_list is not None and self.settings.infinite and not any(weight_list):
            raise ValueError("all weights are zero; nothing can be drawn")
        self.paths = files
        self.labels = None if labels is None else dict(labels)
        self.weights = weight_list
        self.clip = per_file(clip, files, "clip", int)
        if self.labels is not None:
            self._label_names, self._label_table = label_table(self.labels)
        self._native_loader: Any = None
        self._pending_state: dict[str, Any] | None = None
        self._damaged: list[Damaged] = []
        self.skipped = 0

    @property
    def shard(self) -> int:
        """Global shard id: ``rank * num_workers + worker``."""
        s = self.settings
        assert s.rank is not None  # resolved
        return s.rank * s.num_workers + s.worker

    @property
    def num_shards(self) -> int:
        """``num_replicas * num_workers``."""
        s = self.settings
        assert s.num_replicas is not None  # resolved
        return s.num_replicas * s.num_workers

    @property
    def args(self) -> dict[str, Any]:
        """The data (paths, labels, weights, clip) and resolved settings, as one dict."""
        data = dict(paths=self.paths, labels=self.labels, weights=self.weights, clip=self.clip)
        return {**data, **self.settings.as_dict()}

    def with_settings(self, **changes: Any) -> Interleaver:
        """A new Interleaver over the same data with some settings changed."""
        settings = dataclasses.replace(self.settings, **changes)
        return Interleaver(
            self.paths, labels=self.labels, weights=self.weights, clip=self.clip, settings=settings
        )

    @property
    def damaged(self) -> list[Damaged]:
        """The damaged files left partly out under ``on_error="skip"``: (path, byte offset of
        the first bad record, message). Reading it builds the indexes (once)."""
        self._loader()
        return list(self._damaged)

    def _loader(self) -> Any:
        if self._native_loader is None:
            s = self.settings
            tables, self._damaged = load_indexes_and_damage(self.paths, on_error=s.on_error)
            warn_damaged(self._damaged, stacklevel=4)
            ensure_open_file_limit(len(self.paths))
            self._native_loader = _native.NativeLoader(
                self.paths,
                tables,
                weights=self.weights,
                clip=self.clip,
                label_slides=self._label_names if self.labels is not None else None,
                settings=s,
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
        if not self.settings.decode:
            encoded = np.empty(len(image), dtype=object)
            encoded[:] = image
            image = encoded
        out: dict[str, np.ndarray] = {"image": image}
        if self.labels is not None:
            out["label"] = self._label_table[raw["label_row"]]
        if self.settings.incl_slidenames:
            out["slide"] = np.asarray(raw["slide"], dtype=str)
        if self.settings.incl_loc:
            out["loc_x"] = raw["loc"][:, 0].copy()
            out["loc_y"] = raw["loc"][:, 1].copy()
        return out

    def shard_records(self) -> tuple[np.ndarray, np.ndarray]:
        """(file index, record index) of every record of this shard, file by file (clipped)."""
        files, records = self._loader().shard_items()
        return np.asarray(files, dtype=np.int64), np.asarray(records, dtype=np.int64)

    def load_records(
        self, files: Sequence[int] | np.ndarray, records: Sequence[int] | np.ndarray
    ) -> dict[str, np.ndarray]:
        """The given (file, record) pairs as one batch, in order (random access)."""
        raw = self._loader().load([int(f) for f in files], [int(r) for r in records])
        return self._to_output(raw)

    def __len__(self) -> int:
        """Batches per epoch in this shard (finite streams only; before any skipped records)."""
        if self.settings.infinite:
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
        s = self.settings
        return (
            f"Interleaver({len(self.paths)} files, batch_size={s.batch_size}, "
            f"infinite={s.infinite}, shard={self.shard}/{self.num_shards}, seed={s.seed})"
        )
