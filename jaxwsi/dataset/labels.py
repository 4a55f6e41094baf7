"""Outcome labels per slide from annotation columns: categorical indices or continuous floats.

A categorical label is the index of the slide's value in the sorted unique values of that column
(over the dataset's slides, sorted as text, as Slideflow assigns them); a continuous label is the
value as a float. Category values are compared as text with numbers written one way
(`category_text`: ``1`` and ``1.0`` are one class, ``"1"``), so a column that pandas or a
spreadsheet wrote as floats does not split a class in two. Blank values and a
patient whose slides disagree are errors, because both silently corrupt training and splits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import pandas as pd

from jaxwsi.dataset.annotations import blank_mask
from jaxwsi.dataset.errors import DatasetError
from jaxwsi.messages import MAX_NAMED, did_you_mean, name_some

Label = int | float | list[int | float]
UseFloat = bool | Mapping[str, bool]

# A number written with a fraction or an exponent (plain integers such as "01" keep their text).
_FRACTIONAL = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][+-]?\d+)|[+-]?\.\d+[eE][+-]?\d+")


def category_text(value: object) -> str:
    """A category value as text: stripped, and a number written with a fraction or exponent in
    one spelling: integral ones as integers (``1.0``, ``1e0`` → ``"1"``), others as the shortest
    float (``0.50`` → ``"0.5"``). Plain integer text (``"01"``) is kept as written."""
    text = str(value).strip()
    if not _FRACTIONAL.fullmatch(text):
        return text
    number = float(text)
    if not math.isfinite(number):
        return text
    if number.is_integer():
        return str(int(number))
    return repr(number)


def as_headers(headers: str | Sequence[str]) -> list[str]:
    """One header or several as a list; an empty list is an error."""
    result = [headers] if isinstance(headers, str) else list(headers)
    if not result:
        raise DatasetError("no outcome headers given")
    return result


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
            f"outcome column {header!r} is not in the annotations"
            f"{did_you_mean(header, table.columns)} (columns: {name_some(table.columns)})"
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
    as_text = table[header].map(category_text)
    per_patient = as_text.groupby(table["patient"]).nunique()
    conflicting = sorted(per_patient.index[per_patient > 1])
    if conflicting:
        details = [
            f"{p} ({', '.join(f'{s}={v}' for s, v in _slides_and_values(table, header, p))})"
            for p in conflicting[:MAX_NAMED]
        ]
        raise DatasetError(
            f"{len(conflicting)} patient(s) have conflicting {header!r} labels: "
            + "; ".join(details)
        )


def _slides_and_values(table: pd.DataFrame, header: str, patient: str) -> list[tuple[str, str]]:
    rows = table[table["patient"] == patient]
    return list(zip(rows["slide"], rows[header].map(str), strict=True))


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
            text = values.map(category_text)
            unique = sorted(set(text))
            index = {v: i for i, v in enumerate(unique)}
            columns.append(text.map(index).astype(int))
            uniques[header] = unique
    slides = list(table["slide"])
    if len(header_list) == 1:
        only = columns[0]
        return {s: only[s].item() for s in slides}, uniques[header_list[0]]
    return {s: [c[s].item() for c in columns] for s in slides}, uniques


def category_of_slides(table: pd.DataFrame, headers: str | Sequence[str]) -> pd.Series:
    """Each slide's category as text, the header values joined by ``'-'`` (Slideflow's key for
    category balancing, clipping and stratified splits); indexed by slide."""
    parts = [checked_values(table, h).map(category_text) for h in as_headers(headers)]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + "-" + part
    return joined
