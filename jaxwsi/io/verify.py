"""Whole-file verification of many TFRecords in parallel (native, GIL released)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from jaxwsi import _native


@dataclass(frozen=True)
class FileReport:
    """The outcome of verifying one file: counts when clean, the exception when not."""

    path: str
    records: int = 0
    bytes: int = 0
    compression: str = "none"
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        """True when every record framed, verified and (if asked) parsed cleanly."""
        return self.error is None


def verify_files(
    paths: Sequence[str | os.PathLike[str]], *, parse: bool = True
) -> list[FileReport]:
    """Reads every record of every file, checks both CRC32Cs and, with ``parse``, decodes every
    ``tf.train.Example``; never raises for a bad file (see ``FileReport.error``)."""
    names = [os.fspath(p) for p in paths]
    reports = []
    for name, result in zip(names, _native.verify_paths(names, parse), strict=True):
        if isinstance(result, BaseException):
            reports.append(FileReport(name, error=result))
        else:
            records, nbytes, compression = result
            reports.append(FileReport(name, records, nbytes, compression))
    return reports
