"""Checkpoints of a `TrainState` plus JSON extras (epoch, data-iterator state, config), via orbax.

One `Checkpointer` per run folder, over orbax's `CheckpointManager`: each save is a step folder
written to a temporary name and renamed when complete (an interrupted save is ignored and
cleaned up), asynchronous by default (`wait` / `close` before the process exits; `close` is
also registered at exit). Kept: the latest checkpoint, plus the ``keep_n_best`` best by
``best_metric`` when given.

Arrays are stored by position in the flattened state, with their tree paths recorded in the
JSON item, so restoring into a model of another structure fails with an error that says which
entries differ instead of loading garbage. Typed PRNG keys are stored as raw key data.
"""

from __future__ import annotations

import atexit
from pathlib import Path
from types import TracebackType
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from jaxwsi.errors import JaxwsiError

MODES = ("min", "max")


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _flatten(tree: Any) -> tuple[dict[str, Any], list[str]]:
    """{"00000": array, ...} in tree order, and the tree paths of the leaves."""
    leaves_with_paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    arrays = {
        f"{i:05d}": jax.random.key_data(leaf) if _is_key(leaf) else leaf
        for i, (_, leaf) in enumerate(leaves_with_paths)
    }
    paths = [jax.tree_util.keystr(path) for path, _ in leaves_with_paths]
    return arrays, paths


def _abstract(x: Any) -> Any:
    if _is_key(x):
        x = jax.random.key_data(x)
    sharding = getattr(x, "sharding", None)
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)


class CheckpointError(JaxwsiError, ValueError):
    """A checkpoint that is missing or does not fit the model it is restored into."""


class Checkpointer:
    """Save and restore `TrainState`s (any pytree of arrays, in fact) under ``directory``.

    ``keep_n_best``/``best_metric``/``mode``: also keep the N best checkpoints by a metric passed
    to `save` (``mode="min"`` for a loss). ``async_save=False`` makes every save synchronous.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        keep_n_best: int | None = None,
        best_metric: str | None = None,
        mode: str = "min",
        async_save: bool = True,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if (keep_n_best is None) != (best_metric is None):
            raise ValueError("keep_n_best and best_metric go together")
        if keep_n_best is not None and keep_n_best < 1:
            raise ValueError(f"keep_n_best must be >= 1, got {keep_n_best}")
        self.directory = Path(directory).absolute()
        self.best_metric = best_metric
        self.mode = mode
        keep: list[Any] = [policies.LatestN(n=1)]
        if best_metric is not None:
            keep.append(
                policies.BestN(
                    get_metric_fn=lambda metrics: float(metrics[best_metric]),
                    reverse=mode == "min",  # BestN keeps the tail of the sorted order
                    n=keep_n_best,
                    keep_checkpoints_without_metrics=False,
                )
            )
        options = ocp.CheckpointManagerOptions(
            preservation_policy=policies.AnyPreservationPolicy(keep),
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True,
        )
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "extra")
        )
        atexit.register(self.close)

    def save(
        self,
        step: int,
        state: Any,
        *,
        extra: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
    ) -> None:
        """Save ``state`` and the JSON-serializable ``extra`` as checkpoint ``step``."""
        if self.best_metric is not None and metrics is not None and self.best_metric not in metrics:
            raise ValueError(
                f"metrics lack the best_metric {self.best_metric!r}: {sorted(metrics)}"
            )
        arrays, paths = _flatten(state)
        extra_item = {"user": extra or {}, "paths": paths, "metrics": metrics}
        self._manager.save(
            int(step),
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(arrays), extra=ocp.args.JsonSave(extra_item)
            ),
            metrics={k: float(v) for k, v in metrics.items()} if metrics else None,
            force=True,
        )

    def steps(self) -> list[int]:
        """Steps with a finished checkpoint, ascending."""
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def best_step(self) -> int | None:
        """The kept step with the best ``best_metric`` (None without a metric or checkpoints)."""
        if self.best_metric is None:
            return None
        scored = []
        for step in self.steps():
            metrics = self._read_extra(step)["metrics"]
            if metrics is not None:
                scored.append((float(metrics[self.best_metric]), step))
        if not scored:
            return None
        return (min if self.mode == "min" else max)(scored)[1]

    def _read_extra(self, step: int) -> dict[str, Any]:
        restored = self._manager.restore(
            step, args=ocp.args.Composite(extra=ocp.args.JsonRestore())
        )
        return dict(restored["extra"])

    def read_extra(self, step: int | None = None) -> dict[str, Any]:
        """The ``extra`` dict saved with ``step`` (default: the latest)."""
        return self._read_extra(self._checked_step(step))["user"]

    def _checked_step(self, step: int | None) -> int:
        steps = self.steps()
        if not steps:
            raise CheckpointError(f"{self.directory}: no checkpoint to restore")
        if step is None:
            return steps[-1]
        if step not in steps:
            raise CheckpointError(f"{self.directory}: no checkpoint for step {step}; kept: {steps}")
        return step

    def restore(self, like: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """(state, extra) of checkpoint ``step`` (default: latest), restored into the structure,
        dtypes and shardings of ``like`` (a state of the same model, e.g. a freshly built one)."""
        step = self._checked_step(step)
        saved = self._read_extra(step)
        leaves, treedef = jax.tree_util.tree_flatten(like)
        _, paths = _flatten(like)
        if saved["paths"] != paths:
            missing = sorted(set(paths) - set(saved["paths"]))[:5]
            extra = sorted(set(saved["paths"]) - set(paths))[:5]
            raise CheckpointError(
                f"{self.directory} step {step} was saved from a different model or optimizer: "
                f"{len(saved['paths'])} arrays saved, {len(paths)} expected; not in the "
                f"checkpoint: {missing or 'none'}; only in the checkpoint: {extra or 'none'}"
            )
        template = {f"{i:05d}": _abstract(leaf) for i, leaf in enumerate(leaves)}
        restored = self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(template))
        )["state"]
        values = [
            jax.random.wrap_key_data(restored[f"{i:05d}"], impl=jax.random.key_impl(leaf))
            if _is_key(leaf)
            else restored[f"{i:05d}"]
            for i, leaf in enumerate(leaves)
        ]
        return jax.tree_util.tree_unflatten(treedef, values), saved["user"]

    def wait(self) -> None:
        """Block until every asynchronous save has finished."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Finish pending saves and release the manager (idempotent)."""
        if self._manager is not None:
            self._manager.wait_until_finished()
            self._manager.close()
            self._manager = None  # type: ignore[assignment]
            atexit.unregister(self.close)

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def host_numpy(tree: Any) -> Any:
    """A pytree of arrays fully on the host (numpy; PRNG keys as key data), e.g. for comparing
    restored states."""
    return jax.tree.map(lambda x: np.asarray(jax.random.key_data(x) if _is_key(x) else x), tree)
