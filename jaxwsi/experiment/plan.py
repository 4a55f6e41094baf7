"""The validation plan of `Project.train`: which (training, validation) datasets each model of
a hyperparameter set is trained on, from `Dataset.split` (patient-level, saved in splits.json).

- an explicit ``val_dataset``: one run, no split;
- ``"none"``: one run without validation;
- ``"fixed"``: one run validating on ``val_fraction`` of the patients;
- ``"k-fold"``, ``"k-fold-manual"``, ``"k-fold-preserved-site"``, ``"bootstrap"``: one run per
  fold (``-kfold{i}`` in the model name, 1-based), or only the folds listed in ``val_k``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jaxwsi.dataset.dataset import Dataset
from jaxwsi.dataset.errors import DatasetError
from jaxwsi.dataset.splits import check_split_strategy

SINGLE_RUN = ("none", "fixed")


@dataclass(frozen=True)
class ValidationPlan:
    """How to validate: Slideflow's ``val_strategy``, ``val_k_fold``, ``val_k``,
    ``val_fraction`` (and the split's seed and annotation columns)."""

    strategy: str = "k-fold"
    k_fold: int = 3
    k: int | Sequence[int] | None = None
    fraction: float | None = None
    seed: int = 0
    manual_column: str | None = None
    site_column: str = "site"

    def __post_init__(self) -> None:
        check_split_strategy(self.strategy)
        if self.strategy not in SINGLE_RUN and self.k_fold < 2 and self.strategy != "bootstrap":
            raise DatasetError(f"val_k_fold must be >= 2 for {self.strategy}, got {self.k_fold}")
        if self.strategy == "fixed" and not (self.fraction and 0 < self.fraction < 1):
            raise DatasetError(
                f"val_strategy 'fixed' needs 0 < val_fraction < 1, got {self.fraction}"
            )

    def folds_to_train(self, num_folds: int) -> list[int]:
        """1-based fold numbers to train (``k`` checked against the folds there are)."""
        if self.k is None:
            return list(range(1, num_folds + 1))
        wanted = [self.k] if isinstance(self.k, int) else list(self.k)
        bad = [k for k in wanted if not 1 <= k <= num_folds]
        if bad:
            raise DatasetError(f"val_k {bad} out of range: the split has folds 1..{num_folds}")
        return sorted(set(wanted))


@dataclass(frozen=True)
class Run:
    """One model to train: its fold (1-based; None for a single run) and datasets."""

    fold: int | None
    training: Dataset
    validation: Dataset | None


def plan_runs(
    dataset: Dataset,
    outcomes: Sequence[str],
    plan: ValidationPlan,
    *,
    use_float: bool,
    val_dataset: Dataset | None = None,
) -> list[Run]:
    """The runs of the plan on ``dataset`` (split on the ``outcomes`` categories unless
    ``use_float``); every training and validation set must hold slides."""
    if val_dataset is not None:
        runs = [Run(None, dataset, val_dataset)]
    elif plan.strategy == "none":
        runs = [Run(None, dataset, None)]
    else:
        folds = dataset.split(
            list(outcomes),
            plan.strategy,
            k_fold=plan.k_fold,
            val_fraction=plan.fraction,
            seed=plan.seed,
            use_float=use_float,
            manual_column=plan.manual_column,
            site_column=plan.site_column,
        )
        if plan.strategy == "fixed":
            runs = [Run(None, *folds[0])]
        else:
            runs = [Run(k, *folds[k - 1]) for k in plan.folds_to_train(len(folds))]
    for run in runs:
        where = f"fold {run.fold}" if run.fold is not None else "the run"
        if len(run.training) == 0:
            raise DatasetError(f"{where} has no training slides")
        if run.validation is not None and len(run.validation) == 0:
            raise DatasetError(f"{where} has no validation slides")
    return runs
