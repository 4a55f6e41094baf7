"""Store a normalizer's fit in a model's params.json and rebuild it from there for prediction."""

from __future__ import annotations

import json
from pathlib import Path

from jaxwsi.atomic import write_text_atomic
from jaxwsi.norm.base import StainNormalizer
from jaxwsi.norm.registry import autoselect

#: The params.json key holding the fit (Slideflow uses the same name).
NORM_FIT_KEY = "norm_fit"


def save_normalizer(params_json: str | Path, normalizer: StainNormalizer | None) -> None:
    """Write ``normalizer.get_params()`` under ``"norm_fit"`` in ``params_json`` (atomically).

    Other keys in an existing file are kept; the file is created if missing. None records that the
    model was trained without normalization.
    """
    path = Path(params_json)
    content = json.loads(path.read_text()) if path.exists() else {}
    if not isinstance(content, dict):
        raise ValueError(
            f"{path}: params.json must hold a JSON object, got {type(content).__name__}"
        )
    content[NORM_FIT_KEY] = None if normalizer is None else normalizer.get_params()
    write_text_atomic(path, json.dumps(content, indent=2), make_parents=False)


def load_normalizer(params_json: str | Path) -> StainNormalizer | None:
    """The normalizer saved by :func:`save_normalizer`, or None if the model used none."""
    path = Path(params_json)
    content = json.loads(path.read_text())
    if NORM_FIT_KEY not in content:
        raise KeyError(f"{path}: no {NORM_FIT_KEY!r} entry; was the normalizer saved?")
    fit = content[NORM_FIT_KEY]
    if fit is None:
        return None
    if not isinstance(fit, dict) or "method" not in fit:
        raise ValueError(
            f"{path}: {NORM_FIT_KEY!r} must be an object with a 'method' key, got {fit!r}"
        )
    try:
        return autoselect(fit["method"], fit)
    except ValueError as error:
        raise ValueError(f"{path}: bad {NORM_FIT_KEY!r}: {error}") from error
