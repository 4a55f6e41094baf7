"""The configuration file of ``jaxwsi train CONFIG`` (YAML or JSON): the project folder, the
hyperparameters and `Project.train`'s options under their own names::

    project: ../out/quickstart/project   # relative to this file's folder (.py imports too)
    imports: [../small_cnn.py]           # registers the model "small_cnn"
    outcomes: tissue
    params: {tile_px: 64, tile_um: 128, model: small_cnn, epochs: [2], batch_size: 32}
    val_strategy: k-fold          # every other key is a TrainRequest field
    val_k_fold: 3

``params`` is one ModelParams dict, a dict of them by name, or a sweep file path. Unknown keys
are an error naming the file and the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jaxwsi.errors import JaxwsiError
from jaxwsi.messages import unknown


class ConfigError(JaxwsiError, ValueError):
    """A training configuration file that cannot be used."""


@dataclass(frozen=True)
class TrainConfig:
    """A parsed configuration: project folder, params (as `Project.train` takes them) and the
    train options."""

    project: Path
    params: Any
    options: dict[str, Any]


def _read(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise ConfigError(f"configuration file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML/JSON: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return data


def load_train_config(path: str | Path) -> TrainConfig:
    """Read and check a configuration file (see the module docstring)."""
    from jaxwsi.experiment.runner import TrainRequest
    from jaxwsi.train.params import ModelParams

    path = Path(path)
    data = _read(path)
    allowed = [f.name for f in dataclasses.fields(TrainRequest)]
    for required in ("project", "outcomes", "params"):
        if required not in data:
            raise ConfigError(f"{path}: missing required key {required!r}")
    options = {k: v for k, v in data.items() if k not in ("project", "params")}
    for key in options:
        if key not in allowed or key in ("dataset", "val_dataset"):
            raise ConfigError(f"{path}: {unknown('key', key, ['project', 'params', *allowed])}")
    if "imports" in options:  # .py files are relative to this file too
        options["imports"] = [
            str(path.parent / i) if i.endswith(".py") and not Path(i).is_absolute() else i
            for i in options["imports"]
        ]
    project = Path(data["project"])
    project = project if project.is_absolute() else path.parent / project
    raw = data["params"]
    try:
        if isinstance(raw, str):
            swept = Path(raw)
            params: Any = str(swept if swept.is_absolute() else path.parent / swept)
        elif isinstance(raw, dict) and raw and all(isinstance(v, dict) for v in raw.values()):
            params = {name: ModelParams.from_dict(v) for name, v in raw.items()}
        elif isinstance(raw, dict):
            params = ModelParams.from_dict(raw)
        else:
            raise ConfigError(f"{path}: params must be a mapping or a sweep file path")
    except (TypeError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"{path}: params: {error}") from error
    return TrainConfig(project, params, options)
