"""SMAC search spaces (ConfigSpace) over `ModelParams` settings, with Slideflow's two presets.

`create_search_space(**ranges)` reads each setting's type from its value:

- a list of numbers → ordinal (sorted); a list of anything else → categorical;
- a tuple ``(low, high)`` → a uniform range, integer when both ends are ints; on a log scale
  for ``learning_rate`` and ``learning_rate_decay_steps`` (as Slideflow), or when written
  ``(low, high, "log")``;
- ``True`` → a boolean choice [False, True] (``early_stop=True`` searches with and without);
- anything else → a constant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ConfigSpace import ConfigurationSpace

LOG_SCALE = ("learning_rate", "learning_rate_decay_steps")

BROAD = {
    "batch_size": [8, 16, 32, 64],
    "dropout": (0.0, 0.5),
    "l1": (0.0, 0.5),
    "l2": (0.0, 0.5),
    "l1_dense": (0.0, 0.5),
    "l2_dense": (0.0, 0.5),
    "learning_rate": (1e-5, 1e-3),
    "learning_rate_decay": (0.95, 1.0),
    "learning_rate_decay_steps": (128, 1024),
    "hidden_layers": [0, 1, 2, 3],
    "hidden_layer_width": [64, 128, 256, 512],
}
SHALLOW = {
    "batch_size": [8, 16, 32, 64],
    "dropout": (0.0, 0.3),
    "l2": (0.0, 0.3),
    "l2_dense": (0.0, 0.3),
    "learning_rate": (5e-5, 5e-4),
    "hidden_layers": [0, 1, 2],
}


def _hyperparameter(name: str, value: Any) -> Any:
    from ConfigSpace import (
        CategoricalHyperparameter,
        Constant,
        OrdinalHyperparameter,
        UniformFloatHyperparameter,
        UniformIntegerHyperparameter,
    )

    if value is True:
        return CategoricalHyperparameter(name, [False, True], default_value=False)
    if isinstance(value, list):
        if not value:
            raise ValueError(f"search space: {name!r} has an empty list of choices")
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        if numeric:
            return OrdinalHyperparameter(name, sorted(set(value)))
        return CategoricalHyperparameter(name, list(dict.fromkeys(value)))
    if isinstance(value, tuple):
        if len(value) not in (2, 3) or (len(value) == 3 and value[2] != "log"):
            raise ValueError(
                f"search space: {name!r} range must be (low, high[, 'log']), got {value}"
            )
        low, high = value[0], value[1]
        if not low < high:
            raise ValueError(f"search space: {name!r} range needs low < high, got {value}")
        log = len(value) == 3 or name in LOG_SCALE
        if isinstance(low, int) and isinstance(high, int):
            return UniformIntegerHyperparameter(name, low, high, log=log)
        return UniformFloatHyperparameter(name, float(low), float(high), log=log)
    return Constant(name, value if isinstance(value, int | float | str) else str(value))


def create_search_space(**ranges: Any) -> ConfigurationSpace:
    """A ConfigSpace over the given ModelParams settings (types from the values; see the
    module docstring); ``None`` values are left out."""
    from ConfigSpace import ConfigurationSpace

    space = ConfigurationSpace()
    space.add([_hyperparameter(name, value) for name, value in ranges.items() if value is not None])
    return space


def broad_search_space(**overrides: Any) -> ConfigurationSpace:
    """Slideflow's broad search (batch size, dropout, L1/L2, learning rate and decay, hidden
    layers and width); ``overrides`` replace or add settings (``None`` removes one)."""
    return create_search_space(**{**BROAD, **overrides})


def shallow_search_space(**overrides: Any) -> ConfigurationSpace:
    """Slideflow's shallow search (batch size, dropout, L2, learning rate, hidden layers)."""
    return create_search_space(**{**SHALLOW, **overrides})
