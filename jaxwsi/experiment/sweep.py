"""Hyperparameter sweeps in Slideflow's JSON format, and every accepted form of ``params``.

A sweep file is a JSON list of single-key dicts, ``[{"HPSweep0": {...ModelParams.to_dict()}},
...]``; `create_hp_sweep` writes the grid product of every list-valued setting except ``epochs``
(a list of epochs is one setting: the epochs to evaluate at).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jaxwsi.atomic import write_text_atomic
from jaxwsi.errors import JaxwsiError

if TYPE_CHECKING:
    from jaxwsi.train.params import ModelParams

NOT_SWEPT = ("epochs",)


class SweepError(JaxwsiError, ValueError):
    """A sweep file or a ``params`` argument that cannot be read."""


def _model_params() -> type[ModelParams]:
    from jaxwsi.train.params import ModelParams

    return ModelParams


def sweep_grid(label: str | None = None, **kwargs: Any) -> dict[str, ModelParams]:
    """``{"{label-}HPSweep{i}": ModelParams}``, one per combination of the list-valued kwargs."""
    params_type = _model_params()
    swept = {k: v for k, v in kwargs.items() if isinstance(v, list) and k not in NOT_SWEPT}
    fixed = {k: v for k, v in kwargs.items() if k not in swept}
    empty = [k for k, v in swept.items() if not v]
    if empty:
        raise SweepError(f"sweep setting(s) {empty} have an empty list of values")
    prefix = f"{label}-" if label else ""
    grid = {}
    for i, values in enumerate(itertools.product(*swept.values())):
        grid[f"{prefix}HPSweep{i}"] = params_type(**fixed, **dict(zip(swept, values, strict=True)))
    return grid


def write_hp_sweep(path: str | os.PathLike, params: Mapping[str, ModelParams]) -> Path:
    """Write ``{name: ModelParams}`` as a sweep file (atomic); returns the path."""
    entries = [{name: hp.to_dict()} for name, hp in params.items()]
    write_text_atomic(path, json.dumps(entries, indent=1) + "\n")
    return Path(path)


def read_hp_sweep(path: str | os.PathLike) -> dict[str, ModelParams]:
    """``{name: ModelParams}`` from a sweep file; errors name the file and the entry."""
    params_type = _model_params()
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep file not found: {path}")
    try:
        entries = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SweepError(f"{path}: not valid JSON: {error}") from error
    if isinstance(entries, dict):  # also accept one dict name → params
        entries = [{name: value} for name, value in entries.items()]
    if not isinstance(entries, list) or not entries:
        raise SweepError(f"{path}: expected a non-empty list of {{name: params}} entries")
    params: dict[str, ModelParams] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise SweepError(f"{path}: entry {i} must be a dict with one key (the name)")
        ((name, values),) = entry.items()
        if name in params:
            raise SweepError(f"{path}: entry {i}: duplicate name {name!r}")
        if not isinstance(values, dict):
            raise SweepError(f"{path}: entry {i} ({name!r}): params must be a JSON object")
        try:
            params[name] = params_type.from_dict(values)
        except (TypeError, ValueError) as error:
            raise SweepError(f"{path}: entry {i} ({name!r}): {error}") from error
    return params


def as_hp_dict(params: Any) -> dict[str, ModelParams]:
    """Every form ``Project.train`` accepts as ``{name: ModelParams}``: one ModelParams (named
    ``HP0``), a list of them (``HP0``, ``HP1``, ...), a dict name → ModelParams, or the path of a
    sweep file."""
    params_type = _model_params()
    if isinstance(params, params_type):
        return {"HP0": params}
    if isinstance(params, str | os.PathLike):
        return read_hp_sweep(params)
    if isinstance(params, Mapping):
        bad = [k for k, v in params.items() if not isinstance(v, params_type)]
        if bad or not params:
            raise SweepError(f"params dict must map names to ModelParams; bad entries: {bad}")
        return {str(k): v for k, v in params.items()}
    if isinstance(params, Sequence) and params:
        bad_index = [i for i, v in enumerate(params) if not isinstance(v, params_type)]
        if bad_index:
            raise SweepError(f"params list items {bad_index} are not ModelParams")
        return {f"HP{i}": hp for i, hp in enumerate(params)}
    raise SweepError(
        "params must be a ModelParams, a non-empty list or dict of them, or a sweep file path; "
        f"got {type(params).__name__}"
    )
