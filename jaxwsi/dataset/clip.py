"""Maximum tiles read per TFRecord (Slideflow's ``Dataset.clip``, following its code).

``n_i`` is the unclipped tile count of TFRecord i and ``m`` the optional ``max_tiles``:

- no strategy:    clip_i = min(n_i, m).
- ``"slide"``:    c = min(min_i n_i, m); clip_i = min(n_i, c).
- ``"patient"``:  T_p = tiles of patient p over all its slides; c = min(min_p T_p, m);
  clip_i = min(n_i, c). Every TFRecord is clipped to c, so a patient with k slides can keep up to
  k·c tiles (Slideflow's docs say "proportionally"; its code does this).
- ``"category"``: C_c = tiles in category c; clip_i = floor(n_i · min_c' C_c' / C_c), which is
  proportional within a category. ``max_tiles`` is ignored here, as in Slideflow.

``proportional=True`` with ``"patient"`` gives what Slideflow's documentation describes: each
patient keeps at most c tiles in all, spread in proportion, clip_i = floor(n_i · min(1, c / T_p)).
"""

from __future__ import annotations

import math

import pandas as pd

from jaxwsi.dataset.errors import DatasetError
from jaxwsi.messages import unknown

CLIP_STRATEGIES = ("slide", "patient", "category")


def check_clip_strategy(strategy: str | None) -> str | None:
    """The strategy name or None; unknown names are an error."""
    if strategy is not None and strategy not in CLIP_STRATEGIES:
        raise DatasetError(unknown("clip strategy", strategy, CLIP_STRATEGIES) + " (or None)")
    return strategy


def clip_counts(
    tiles: pd.DataFrame,
    max_tiles: int = 0,
    strategy: str | None = None,
    categories: pd.Series | None = None,
    *,
    proportional: bool = False,
) -> dict[str, int] | None:
    """Clip count per TFRecord path, or None when nothing is clipped (``max_tiles=0``, no
    strategy).

    ``tiles`` is indexed by TFRecord path with columns ``patient`` and ``tiles`` (unclipped
    counts); ``categories`` (path → category text) is required for ``"category"``.
    """
    strategy = check_clip_strategy(strategy)
    if proportional and strategy != "patient":
        raise DatasetError(f"proportional clipping applies to 'patient', not {strategy!r}")
    if max_tiles < 0:
        raise DatasetError(f"max_tiles must be >= 0, got {max_tiles}")
    if not max_tiles and strategy is None:
        return None
    if tiles.empty:
        raise DatasetError("cannot clip an empty dataset (no TFRecords)")
    counts = tiles["tiles"].astype(int)
    if strategy == "category":
        if categories is None:
            raise DatasetError("category clipping needs headers (the outcome columns)")
        category = categories.reindex(tiles.index)
        tiles_per_category = counts.groupby(category).sum()
        fraction = tiles_per_category.min() / tiles_per_category
        return {str(p): math.floor(n * fraction[category[p]]) for p, n in counts.items()}
    if strategy == "slide":
        cap = int(counts.min())
    elif strategy == "patient":
        patient_tiles = counts.groupby(tiles["patient"]).transform("sum")
        cap = int(patient_tiles.min())
        if proportional:
            cap = min(cap, max_tiles) if max_tiles else cap
            return {
                str(p): math.floor(n * min(1.0, cap / patient_tiles[p])) for p, n in counts.items()
            }
    else:
        cap = max_tiles
    if max_tiles:
        cap = min(cap, max_tiles)
    return {str(p): min(int(n), cap) for p, n in counts.items()}
