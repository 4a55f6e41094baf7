"""The annotations table: one row per slide with its patient and outcome columns.

Required columns are ``patient`` and ``slide``; everything else (outcomes, ``dataset``, ``site``)
is optional. CSV cells are read as text, as Slideflow does, so labels such as ``"01"`` keep their
spelling, and nothing is parsed as "not available": a patient called ``NA``, ``None`` or ``null``
is a patient, and only an empty cell is blank. The file must be UTF-8 (a byte-order mark is
allowed); a DataFrame is taken as it is (there None and NaN are blank). Validation names the file
and the offending rows (CSV line numbers: header = line 1) and slides.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import TypeAlias

import pandas as pd

from jaxwsi.dataset.errors import AnnotationError

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("patient", "slide")

AnnotationsSource: TypeAlias = str | os.PathLike | pd.DataFrame


def is_blank(value: object) -> bool:
    """Whether a cell holds no value: None, NaN, or text that is empty or only spaces."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, str) and not value.strip()


def blank_mask(column: pd.Series) -> pd.Series:
    """Boolean mask of the blank cells of a column (see `is_blank`)."""
    return column.map(is_blank).astype(bool)


def csv_lines(table: pd.DataFrame, index: pd.Index) -> list[int]:
    """CSV line numbers of the given rows (the header is line 1, the first row line 2)."""
    positions = table.index.get_indexer(index)
    return [int(p) + 2 for p in positions]


def load_annotations(source: AnnotationsSource) -> pd.DataFrame:
    """Read and validate annotations from a CSV path or a DataFrame; returns a new DataFrame.

    The result has a fresh 0..n-1 index (row i is CSV line i + 2) and ``patient`` and ``slide`` as
    stripped strings. Raises `AnnotationError` for missing required columns, blank patient or slide
    cells and duplicate slide rows.
    """
    if isinstance(source, pd.DataFrame):
        table = source.copy()
        origin = "annotations DataFrame"
    else:
        path = Path(source)
        if not path.is_file():
            raise AnnotationError(f"annotations file not found: {path}")
        table = _read_csv(path)
        origin = str(path)
    table = table.reset_index(drop=True)
    table.columns = [str(c).strip() for c in table.columns]
    _check_columns(table, origin)
    for column in REQUIRED_COLUMNS:
        blank = blank_mask(table[column])
        if blank.any():
            lines = csv_lines(table, table.index[blank])
            raise AnnotationError(
                f"{origin}: {int(blank.sum())} row(s) have a blank {column!r}: lines {lines}"
            )
        table[column] = table[column].map(lambda v: str(v).strip()).astype(object)
    _check_duplicate_slides(table, origin)
    log.debug("loaded %d annotation rows from %s", len(table), origin)
    return table


def _read_csv(path: Path) -> pd.DataFrame:
    """Every cell as text, no NA parsing; unreadable files are an `AnnotationError` naming them."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise AnnotationError(
            f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x} on line {line}); "
            "save the annotations as UTF-8 CSV"
        ) from None
    except pd.errors.EmptyDataError:
        raise AnnotationError(
            f"{path}: the file is empty; expected a header line such as 'patient,slide,label'"
        ) from None
    except (pd.errors.ParserError, OSError) as error:
        raise AnnotationError(f"{path}: cannot read the annotations CSV: {error}") from None


def _check_columns(table: pd.DataFrame, origin: str) -> None:
    duplicated = sorted({c for c in table.columns if list(table.columns).count(c) > 1})
    if duplicated:
        raise AnnotationError(f"{origin}: duplicate column names {duplicated}")
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise AnnotationError(
            f"{origin}: missing required column(s) {missing}; found columns {list(table.columns)}"
        )


def _check_duplicate_slides(table: pd.DataFrame, origin: str) -> None:
    duplicated = table["slide"].duplicated(keep=False)
    if not duplicated.any():
        return
    details = [
        f"{slide!r} on lines {csv_lines(table, rows.index)}"
        for slide, rows in table[duplicated].groupby("slide", sort=True)
    ]
    raise AnnotationError(f"{origin}: duplicate slide rows: " + "; ".join(details))
