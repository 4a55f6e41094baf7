"""`Project.smac_search`: SMAC proposes ModelParams overrides, each proposal is trained as a
validation plan (all folds × replicates of a round run together as parallel trials), and the
cost SMAC minimises is ``1 - metric`` (Slideflow's objective) at the last evaluated epoch,
averaged over folds, outcomes, classes and replicates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxwsi.experiment.model_dir import new_model_dir
from jaxwsi.experiment.runner import TrainRequest, train_plan
from jaxwsi.experiment.smac_search import SearchResult, run_smac

if TYPE_CHECKING:
    from ConfigSpace import ConfigurationSpace

    from jaxwsi.project import Project
    from jaxwsi.train.params import ModelParams

Metric = str | Callable[[Mapping[str, Any]], float]


def _epoch_number(key: Any) -> int:
    match = re.search(r"(\d+)$", str(key))
    return int(match[1]) if match else -1


def metric_value(results: Mapping[Any, Any], metric: Metric, outcomes: Sequence[str]) -> float:
    """The metric at the last epoch of one model's results (``{epoch: {metric: {outcome:
    value or per-class list}}}``), averaged over outcomes and classes; a callable gets the
    last epoch's metrics dict."""
    if not results:
        return math.nan
    last = results[max(results, key=_epoch_number)]
    if callable(metric):
        return float(metric(last))
    if metric not in last:
        raise KeyError(f"metric {metric!r} not in the results; they have {sorted(last)}")
    value = last[metric]
    if isinstance(value, Mapping):
        value = [value[o] for o in outcomes if o in value] or list(value.values())
    return float(np.nanmean(np.asarray(value, dtype=np.float64)))


def hp_from_config(base: ModelParams, config: Mapping[str, Any]) -> ModelParams:
    """``base`` with a SMAC configuration's settings (``"none"`` means None, as Slideflow)."""
    values = {k: (None if v == "none" else v) for k, v in config.items()}
    return type(base).from_dict({**base.to_dict(), **values})


def smac_search(
    project: Project,
    params: ModelParams,
    space: ConfigurationSpace,
    request: TrainRequest,
    *,
    exp_label: str = "SMAC",
    smac_limit: int = 10,
    smac_metric: Metric = "tile_auc",
    smac_replicates: int = 1,
    smac_seed: int = 0,
    facade: str = "hpo",
) -> SearchResult:
    """Run the search; ``run_history.csv`` and ``best_config.csv`` go into a new model folder
    ``models/{id}-{exp_label}``. Trials of one round run in parallel when ``request.execution``
    allows (``parallel`` SMAC proposals per round)."""
    outdir = new_model_dir(project.models_dir, exp_label)
    counter = iter(range(1_000_000))
    outcomes = list(request.outcomes)

    def evaluate(configs: Sequence[dict[str, Any]]) -> list[tuple[float, dict[str, Any]]]:
        names: list[list[str]] = []
        hp_dict: dict[str, ModelParams] = {}
        for config in configs:
            trial = next(counter)
            hp = hp_from_config(params, config)
            keys = [f"{exp_label}-trial{trial}-rep{r}" for r in range(smac_replicates)]
            hp_dict.update(dict.fromkeys(keys, hp))
            names.append(keys)
        results = train_plan(project, hp_dict, request)
        scores = []
        for keys in names:
            # every model folder of these replicates (one per fold)
            models = [r for name, r in results.items() if any(f"-{k}" in name for k in keys)]
            values = [metric_value(r, smac_metric, outcomes) for r in models]
            mean = float(np.nanmean(values)) if values else math.nan
            scores.append((1.0 - mean, {"metric": mean, "models": len(models)}))
        return scores

    parallel = request.execution.parallel or 1
    return run_smac(
        space,
        evaluate,
        outdir,
        n_trials=smac_limit,
        parallel=parallel,
        seed=smac_seed,
        facade=facade,
    )
