"""Outcome labels per slide from annotation columns: categorical indices or continuous floats.

A categorical label is the index of the slide's value in the sorted unique values of that column
(over the dataset's slides); a continuous label is the value as a float. Blank values and a
patient whose slides disagree are errors, because both silently corrupt training and splits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from jaxwsi.dataset.annotations import blank_mask
from jaxwsi.dataset.errors import DatasetError

Label = int | float | list[int | float]
UseFloat = bool | Mapping[str, bool]

_MAX_NAMED = 20  # how many slides or patients an error message names before "and N more"


def as_headers(headers: str | Sequence[str]) -> list[str]:
    """One header or several as a list; an empty list is an error."""
    result = [headers] if isinstance(headers, str) else list(headers)
    if not result:
        raise DatasetError("no outcome headers given")
    return result


def name_some(names: Sequence[object]) -> str:
    """A readable list of at most ``_MAX_NAMED`` names, with a count of the rest."""
    shown = ", ".join(str(n) for n in names[:_MAX_NAMED])
    more = len(names) - _MAX_NAMED
    return shown + (f" and {more} more" if more > 0 else "")


def is_float_column(values: pd.Series) -> bool:
    """Whether every non-blank value parses as a float (Slideflow's test for a float header)."""
    present = values[~blank_mask(values)]
    try:
        present.map(float)
    except (TypeError, ValueError):
        return False
    return len(present) > 0


def checked_values(table: pd.DataFrame, header: str) -> pd.Series:
    """The ``header`` column indexed by slide, after checking it exists, has no blank value and
    agrees within each patient."""
    if header not in table.columns:
        raise DatasetError(
            f"outcome column {header!r} is not in the annotations (columns: {list(table.columns)})"
        )
    values = pd.Series(table[header].to_numpy(), index=table["slide"].to_numpy(), name=header)
    blank = blank_mask(values)
    if blank.any():
        slides = list(values.index[blank.to_numpy()])
        raise DatasetError(
            f"{len(slides)} slide(s) have a blank {header!r}: {name_some(slides)} "
            f"(remove them with filter_blank([{header!r}]))"
        )
    _check_patient_agreement(table, header)
    return values


def _check_patient_agreement(table: pd.DataFrame, header: str) -> None:
    as_text = table[header].map(lambda v: str(v).strip())
    per_patient = as_text.groupby(table["patient"]).nunique()
    conflicting = sorted(per_patient.index[per_patient > 1])
    if conflicting:
        details = [
            f"{p} ({', '.join(f'{s}={v}' for s, v in _slides_and_values(table, header, p))})"
            for p in conflicting[:_MAX_NAMED]
        ]
        raise DatasetError(
            f"{len(conflicting)} patient(s) have conflicting {header!r} labels: "
            + "; ".join(details)
        )


def _slides_and_values(table: pd.DataFrame, header: str, patient: str) -> list[tuple[str, str]]:
    rows = table[table["patient"] == patient]
    return list(zip(rows["slide"], rows[header].map(str), strict=True))


def sorted_unique(values: pd.Series) -> list:
    """Sorted unique values; compared as text when the values are of mixed types."""
    unique = list(pd.unique(values))
    try:
        return sorted(unique)
    except TypeError:
        return sorted(unique, key=str)


def _float_values(values: pd.Series, header: str) -> pd.Series:
    def parse(slide: str, value: object) -> float:
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise DatasetError(
                f"slide {slide}: {header!r} value {value!r} is not a number "
                f"(use use_float=False for a categorical outcome)"
            ) from None

    return pd.Series(
        [parse(s, v) for s, v in values.items()], index=values.index, name=header, dtype=float
    )


def slide_labels(
    table: pd.DataFrame, headers: str | Sequence[str], use_float: UseFloat = False
) -> tuple[dict[str, Label], list | dict[str, list]]:
    """Labels of the slides in ``table`` (annotation rows with ``slide`` and ``patient``).

    Returns ``(labels, unique)``. With one header, ``labels[slide]`` is an int index into
    ``unique`` (categorical) or a float, and ``unique`` is the sorted list of values (empty for a
    continuous header). With several headers each label is a list with one entry per header and
    ``unique`` maps each header to its list. ``use_float`` is a bool for all headers or a mapping
    header → bool.
    """
    header_list = as_headers(headers)
    columns: list[pd.Series] = []
    uniques: dict[str, list] = {}
    for header in header_list:
        values = checked_values(table, header)
        continuous = (
            use_float.get(header, False) if isinstance(use_float, Mapping) else bool(use_float)
        )
        if continuous:
            columns.append(_float_values(values, header))
            uniques[header] = []
        else:
            unique = sorted_unique(values)
            index = {v: i for i, v in enumerate(unique)}
            columns.append(values.map(index).astype(int))
            uniques[header] = unique
    slides = list(table["slide"])
    if len(header_list) == 1:
        only = columns[0]
        return {s: only[s].item() for s in slides}, uniques[header_list[0]]
    return {s: [c[s].item() for c in columns] for s in slides}, uniques


def category_of_slides(table: pd.DataFrame, headers: str | Sequence[str]) -> pd.Series:
    """Each slide's category as text, the header values joined by ``'-'`` (Slideflow's key for
    category balancing, clipping and stratified splits); indexed by slide."""
    parts = [checked_values(table, h).map(lambda v: str(v).strip()) for h in as_headers(headers)]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + "-" + part
    return joined
