"""Row filters on the annotations table: allowed values per column, and non-blank columns."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import pandas as pd

from jaxwsi.dataset.annotations import blank_mask
from jaxwsi.dataset.errors import DatasetError
from jaxwsi.dataset.labels import category_text
from jaxwsi.messages import did_you_mean, name_some

log = logging.getLogger(__name__)

Filters = Mapping[str, object]


def normalize_filters(filters: Filters | None) -> dict[str, tuple[str, ...]]:
    """Filters as ``{column: (allowed values as text, ...)}``; a scalar allows one value. Values
    are compared as `category_text` (``1`` allows ``"1.0"``)."""
    normalized: dict[str, tuple[str, ...]] = {}
    for column, allowed in (filters or {}).items():
        values = (
            [allowed]
            if isinstance(allowed, str) or not isinstance(allowed, Iterable)
            else list(allowed)
        )
        normalized[str(column)] = tuple(category_text(v) for v in values)
    return normalized


def apply_filters(
    table: pd.DataFrame,
    filters: Mapping[str, tuple[str, ...]],
    blank_columns: Iterable[str] = (),
) -> pd.DataFrame:
    """Rows whose value in each filtered column is one of the allowed values (compared as text)
    and whose ``blank_columns`` are not blank. Logs how many rows each filter removes."""
    kept = table
    for column, allowed in filters.items():
        _require_column(table, column, "filter")
        allowed_set = set(allowed)
        mask = kept[column].map(lambda v, a=allowed_set: category_text(v) in a).astype(bool)
        _log_removed(kept, mask, f"filter {column!r} in {sorted(allowed_set)}")
        kept = kept[mask]
    for column in blank_columns:
        _require_column(table, column, "filter_blank")
        mask = ~blank_mask(kept[column])
        _log_removed(kept, mask, f"filter_blank {column!r}")
        kept = kept[mask]
    return kept


def _require_column(table: pd.DataFrame, column: str, what: str) -> None:
    if column not in table.columns:
        raise DatasetError(
            f"{what}: column {column!r} is not in the annotations"
            f"{did_you_mean(column, table.columns)} (columns: {name_some(table.columns)})"
        )


def _log_removed(table: pd.DataFrame, mask: pd.Series, what: str) -> None:
    removed = int((~mask).sum())
    if removed:
        log.info("%s removed %d of %d slide(s)", what, removed, len(table))
