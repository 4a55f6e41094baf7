"""Model folders: ``models/{00000}-{outcomes}-{hp_name}[-kfold{k}]/`` as Slideflow names them.

The five-digit prefix is one more than the highest already in the models folder, so folders sort
in the order they were made; `find_model_dir` finds an earlier folder of the same name (resume).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

_NUMBERED = re.compile(r"^(\d{5})-(.+)$")


def model_name(outcomes: str | Sequence[str], hp_name: str, fold: int | None = None) -> str:
    """``{outcome1-outcome2}-{hp_name}``, plus ``-kfold{k}`` (1-based) for a fold of a CV plan."""
    joined = outcomes if isinstance(outcomes, str) else "-".join(outcomes)
    name = f"{joined}-{hp_name}"
    return f"{name}-kfold{fold}" if fold is not None else name


def _numbered(models_dir: Path) -> list[tuple[int, str, Path]]:
    if not models_dir.is_dir():
        return []
    found = []
    for path in models_dir.iterdir():
        match = _NUMBERED.match(path.name)
        if match and path.is_dir():
            found.append((int(match[1]), match[2], path))
    return sorted(found)


def new_model_dir(models_dir: str | Path, name: str) -> Path:
    """Make and return ``models_dir/{next id:05d}-{name}``."""
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    while True:
        numbered = _numbered(models_dir)
        next_id = numbered[-1][0] + 1 if numbered else 0
        path = models_dir / f"{next_id:05d}-{name}"
        try:
            path.mkdir()  # atomic: a concurrent maker of the same id retries with the next
        except FileExistsError:
            continue
        return path


def find_model_dir(models_dir: str | Path, name: str) -> Path | None:
    """The newest ``{id}-{name}`` folder in ``models_dir``, or None."""
    matches = [path for _, found, path in _numbered(Path(models_dir)) if found == name]
    return matches[-1] if matches else None
