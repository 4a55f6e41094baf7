"""Sampling weights per TFRecord (Slideflow's ``Dataset.balance``, following its code).

``n_i`` is the tile count of TFRecord i after clipping. The strategies:

- ``"tile"``:     w_i = n_i / Σ_j n_j  (every tile equally likely).
- ``"slide"``:    w_i = 1 / N  (N TFRecords; every slide equally likely).
- ``"patient"``:  w_i = 1 / (P · s_p)  (P patients, s_p slides of slide i's patient): each patient
  gets mass 1/P, split evenly over its slides. Not tile-proportional (Slideflow's docs say it is).
- ``"category"``: with S_c the number of *slides* in category c (not tiles, whatever Slideflow's
  docs say), q_c = min_c' S_c' / S_c and w_i = q_{c_i} / Σ_j q_{c_j}. Each category gets equal
  mass, spread uniformly over its slides.
- ``"none"``:     no weights; the loader samples TFRecords uniformly.

``proportional=True`` gives what Slideflow's documentation describes instead, for ``"patient"``
and ``"category"``: each of the G groups (patients or categories) gets mass 1/G, spread over its
TFRecords in proportion to their tiles, w_i = (1/G) · n_i / T_g with T_g the group's tiles.
"""

from __future__ import annotations

import pandas as pd

from jaxwsi.dataset.errors import DatasetError
from jaxwsi.messages import unknown

BALANCE_STRATEGIES = ("tile", "slide", "patient", "category", "none")
PROPORTIONAL_BALANCE = ("patient", "category")


def check_balance_strategy(strategy: str | None) -> str:
    """The strategy name (``None`` means ``"none"``); unknown names are an error."""
    name = "none" if strategy is None else strategy
    if name not in BALANCE_STRATEGIES:
        raise DatasetError(unknown("balance strategy", strategy, BALANCE_STRATEGIES))
    return name


def balance_weights(
    tiles: pd.DataFrame,
    strategy: str,
    categories: pd.Series | None = None,
    *,
    proportional: bool = False,
) -> dict[str, float] | None:
    """Weights per TFRecord path, or None for ``"none"``.

    ``tiles`` is indexed by TFRecord path with columns ``patient`` and ``tiles`` (clipped counts);
    ``categories`` (path → category text) is required for ``"category"``.
    """
    strategy = check_balance_strategy(strategy)
    if proportional and strategy not in PROPORTIONAL_BALANCE:
        raise DatasetError(
            f"proportional balancing applies to {list(PROPORTIONAL_BALANCE)}, not {strategy!r}"
        )
    if strategy == "none":
        return None
    if tiles.empty:
        raise DatasetError("cannot balance an empty dataset (no TFRecords)")
    if strategy == "category":
        if categories is None:
            raise DatasetError("category balancing needs headers (the outcome columns)")
        category = categories.reindex(tiles.index)
    if proportional:
        group = tiles["patient"] if strategy == "patient" else category
        weights = _proportional_weights(tiles["tiles"], group, strategy)
    elif strategy == "tile":
        total = int(tiles["tiles"].sum())
        if total == 0:
            raise DatasetError("cannot balance by tile: the TFRecords hold no tiles")
        weights = tiles["tiles"] / total
    elif strategy == "slide":
        weights = pd.Series(1.0 / len(tiles), index=tiles.index)
    elif strategy == "patient":
        slides_per_patient = tiles.groupby("patient")["patient"].transform("size")
        n_patients = tiles["patient"].nunique()
        weights = 1.0 / (n_patients * slides_per_patient)
    else:
        slides_per_category = category.value_counts()
        category_prob = slides_per_category.min() / slides_per_category
        per_record = category.map(category_prob)
        weights = per_record / per_record.sum()
    return {str(path): float(w) for path, w in weights.items()}


def _proportional_weights(counts: pd.Series, group: pd.Series, what: str) -> pd.Series:
    """w_i = (1/G) · n_i / T_g: equal mass per group, tile-proportional within it."""
    group_tiles = counts.groupby(group).transform("sum")
    empty = sorted(set(group[group_tiles == 0]))
    if empty:
        raise DatasetError(f"{what} group(s) {empty} have no tiles to balance in proportion to")
    return counts / group_tiles / group.nunique()
