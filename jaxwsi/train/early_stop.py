"""Early stopping as Slideflow defines it: a moving average of mid-epoch validation checks.

Every ``validate_on_batch`` steps the trainer measures the validation loss (or accuracy) on
``validation_steps`` batches and calls `EarlyStop.update`. Once ``ema_observations`` values are
in, their simple mean starts an exponential moving average (smoothing ``ema_smoothing``); the
run stops when that average is no better than it was two checks earlier and the run is past
``early_stop_patience`` epochs (fractional: epochs done + step / steps per epoch).
``early_stop_method="manual"`` stops at ``manual_early_stop_epoch`` / ``_batch`` instead.
The state is plain JSON, saved in checkpoints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class EarlyStop:
    method: str = "loss"  # "loss" (lower is better) or "accuracy"
    patience: float = 0
    observations: int = 20
    smoothing: float = 2.0
    values: list[float] = field(default_factory=list)
    last_ema: float | None = None
    one_check_prior: float | None = None
    two_checks_prior: float | None = None

    def update(self, value: float, progress_epochs: float) -> bool:
        """Add one check's value; True when training should stop."""
        self.values = [*self.values, float(value)][-self.observations :]
        if len(self.values) < self.observations:
            return False
        if self.last_ema is None:
            self.last_ema = sum(self.values) / len(self.values)
        else:
            alpha = self.smoothing / (1 + self.observations)
            self.last_ema = float(value) * alpha + self.last_ema * (1 - alpha)
        if progress_epochs > self.patience and self.two_checks_prior is not None:
            worse = (
                self.last_ema <= self.two_checks_prior
                if self.method == "accuracy"
                else self.last_ema >= self.two_checks_prior
            )
            if worse:
                return True
        self.two_checks_prior = self.one_check_prior
        self.one_check_prior = self.last_ema
        return False

    def state(self) -> dict[str, Any]:
        return asdict(self)
