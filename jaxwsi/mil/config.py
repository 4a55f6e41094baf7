"""`MILConfig`: every MIL training setting in one object, with Slideflow's defaults.

`mil_config(model, **kw)` splits its keywords: fields of `MILConfig` set the training, any other
keyword is an option of the model (e.g. ``k_sample=8`` for CLAM, ``dropout`` for attention_mil)
and goes to its registered factory.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxwsi.mil.errors import MILConfigError

AGGREGATION_LEVELS = ("slide", "patient")
SAVE_MONITORS = {"valid_loss": "min", "roc_auc": "max"}
CLASSIFICATION_LOSS = "cross_entropy"
REGRESSION_LOSSES = ("mse", "mae", "huber")
LOSSES = (CLASSIFICATION_LOSS, *REGRESSION_LOSSES)


@dataclasses.dataclass(frozen=True)
class MILConfig:
    """MIL training settings (Slideflow's `TrainerConfig` defaults unless noted).

    - ``model``: a registered MIL model name (``jaxwsi.models.names("mil")``);
      ``model_options``: keywords for its factory.
    - ``lr``: peak learning rate of the one-cycle schedule (Slideflow's default None runs
      fastai's learning-rate finder; jaxwsi has none and uses 1e-4, Slideflow's tutorial value);
      ``wd``: decoupled weight decay (AdamW).
    - ``bag_size``: tiles sampled per training bag (padded with a mask when fewer);
      ``max_val_bag_size``: cap for validation bags (None: whole bags).
    - ``fit_one_cycle``: one-cycle schedule (warm-up 25%, cosine), else a constant ``lr``.
    - ``epochs``, ``batch_size`` (bags per step, split over the devices), ``drop_last``.
    - ``loss``: ``cross_entropy`` (one categorical outcome), or a regression loss on one or more
      continuous outcomes (one output each): ``mse`` (mean squared error), ``mae`` (mean
      absolute error), ``huber`` (δ = 1, torch's default). Regression takes no CLAM or
      ``mil_fc`` model (their instance loss / top tile need classes).
    - ``save_monitor``: ``valid_loss`` (lowest) or ``roc_auc`` (highest; classification only)
      picks the kept model.
    - ``weighted_loss``: class weights ∝ 1 / class frequency in the training bags
      (classification only; a regression loss ignores it).
    - ``aggregation_level``: ``slide``, or ``patient`` (a patient's bags concatenated).
    - ``uq``: predictions with uncertainty from ``uq_samples`` Monte-Carlo dropout passes.
    - ``seed``: model init, bag sampling and dropout.
    """

    model: str = "attention_mil"
    model_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    lr: float = 1e-4
    wd: float = 1e-5
    bag_size: int = 512
    max_val_bag_size: int | None = None
    fit_one_cycle: bool = True
    epochs: int = 32
    batch_size: int = 64
    drop_last: bool = True
    loss: str = dataclasses.field(default=CLASSIFICATION_LOSS, metadata={"choices": LOSSES})
    save_monitor: str = "valid_loss"
    weighted_loss: bool = True
    aggregation_level: str = "slide"
    uq: bool = False
    uq_samples: int = 30
    seed: int = 0

    def __post_init__(self) -> None:
        if self.aggregation_level not in AGGREGATION_LEVELS:
            raise MILConfigError(
                f"aggregation_level must be one of {AGGREGATION_LEVELS}, "
                f"got {self.aggregation_level!r}"
            )
        if self.save_monitor not in SAVE_MONITORS:
            raise MILConfigError(
                f"save_monitor must be one of {sorted(SAVE_MONITORS)}, got {self.save_monitor!r}"
            )
        if self.loss not in LOSSES:
            raise MILConfigError(f"loss must be one of {list(LOSSES)}, got {self.loss!r}")
        if self.is_regression and self.save_monitor == "roc_auc":
            raise MILConfigError(
                f"save_monitor 'roc_auc' needs classes; loss {self.loss!r} is a regression loss "
                "(use save_monitor='valid_loss')"
            )
        for name in ("bag_size", "epochs", "batch_size", "uq_samples"):
            if int(getattr(self, name)) < 1:
                raise MILConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_val_bag_size is not None and self.max_val_bag_size < 1:
            raise MILConfigError(f"max_val_bag_size must be >= 1, got {self.max_val_bag_size}")
        if not self.lr > 0:
            raise MILConfigError(f"lr must be > 0, got {self.lr}")

    @property
    def is_regression(self) -> bool:
        """Whether ``loss`` trains continuous outcomes (raw outputs, no softmax)."""
        return self.loss != CLASSIFICATION_LOSS

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MILConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise MILConfigError(f"unknown MIL setting(s) {unknown}; settings are {sorted(known)}")
        return cls(**values)


FIELDS = tuple(f.name for f in dataclasses.fields(MILConfig))


def mil_config(model: str = "attention_mil", **kw: Any) -> MILConfig:
    """A `MILConfig` for ``model``: `MILConfig` fields set training, other keywords go to the
    model (``model_options``)."""
    options = dict(kw.pop("model_options", {}))
    options.update({k: kw.pop(k) for k in list(kw) if k not in FIELDS})
    return MILConfig(model=model, model_options=options, **kw)
