"""Slideflow-compatible record indexes: ``{name}.index.npz`` beside each TFRecord.

The file holds ``arr_0`` (int64 [N,2]: offset of each record's length header, framed length
8+4+len+4) and, when every record has ``loc_x``/``loc_y``, ``locations`` (int64 [N,2]), exactly
as Slideflow writes it, plus ``source_stat`` (int64 [2]: the TFRecord's size and mtime in ns when
indexed), which Slideflow ignores. Slideflow's older ``.index.npy`` and text ``.index`` are read
too.

An index is trusted only while it still describes its TFRecord: the stored size/mtime must match
(when present), the records must tile the file exactly, sampled record headers must carry valid
length CRCs and the indexed lengths, and the last record must verify. Otherwise it is stale and is
rebuilt (a new ``.index.npz``; legacy files are left alone). An index file that cannot be read
(empty, truncated, not a zip) is stale too. Building scans with both CRCs verified, in parallel
over files in native code.

A TFRecord that cannot be indexed (truncated, a bad record, missing) is *damaged*. With
``on_error="raise"`` the loaders raise naming every damaged file (one file: its own exception;
several: one ``TFRecordError`` listing each); with ``"skip"`` a damaged file is indexed up to its
first bad record, kept in memory (not saved), and reported as a `Damaged` (path, offset,
message) with a warning.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from jaxwsi import _native

INDEX_SUFFIX = ".index.npz"
_LEGACY_SUFFIXES = (".index.npy", ".index")
_TFRECORD_SUFFIXES = (".tfrecords", ".tfrecord")

PathLike = str | os.PathLike[str]

# What reading a damaged index file raises (numpy: EOFError for an empty file, BadZipFile for a
# truncated one); such an index is stale and rebuilt.
_UNREADABLE_INDEX = (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile)


class Damaged(NamedTuple):
    """A TFRecord that could not be indexed whole: the byte offset of its first bad record (0
    when it cannot be opened) and the error message."""

    path: str
    offset: int
    message: str


def raise_damaged(errors: Sequence[tuple[str, BaseException]]) -> None:
    """Raises for every damaged file: one file's own exception, or one ``TFRecordError``
    naming each of several (chained from the first)."""
    if not errors:
        return
    if len(errors) == 1:
        raise errors[0][1]
    lines = "\n".join(f"  {path}: {type(e).__name__}: {e}" for path, e in errors)
    raise _native.TFRecordError(f"{len(errors)} TFRecords are damaged:\n{lines}") from errors[0][1]


def _stem(tfrecord: Path) -> str:
    name = tfrecord.name
    for suffix in _TFRECORD_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return tfrecord.stem if tfrecord.suffix else name


def index_path(tfrecord: PathLike) -> Path:
    """The ``.index.npz`` path of a TFRecord: ``a/slide.tfrecords`` → ``a/slide.index.npz``."""
    path = Path(tfrecord)
    return path.with_name(_stem(path) + INDEX_SUFFIX)


def _candidate_indexes(tfrecord: Path) -> list[Path]:
    stem = tfrecord.with_name(_stem(tfrecord))
    return [Path(f"{stem}{s}") for s in (INDEX_SUFFIX, *_LEGACY_SUFFIXES)]


def _source_stat(tfrecord: Path) -> np.ndarray:
    st = os.stat(tfrecord)
    return np.array([st.st_size, st.st_mtime_ns], dtype=np.int64)


def _read_index_file(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Reads any index flavour: returns (records [N,2], source_stat or None)."""
    records: np.ndarray | None
    if path.name.endswith(".npz"):
        with np.load(path) as npz:
            records = np.asarray(npz["arr_0"])
            stat = np.asarray(npz["source_stat"]) if "source_stat" in npz.files else None
    elif path.name.endswith(".npy"):
        records, stat = np.load(path), None
    else:
        text = path.read_text().strip()
        records = np.loadtxt(text.splitlines(), dtype=np.int64, ndmin=2) if text else None
        stat = None
    if records is None or records.size == 0:
        records = np.zeros((0, 2), dtype=np.int64)
    records = np.asarray(records, dtype=np.int64)
    if records.ndim != 2 or records.shape[1] != 2:
        raise ValueError(f"{path}: index has shape {records.shape}, expected [N, 2]")
    return records, stat


def _is_current(tfrecord: Path, records: np.ndarray, stat: np.ndarray | None) -> bool:
    if stat is not None and not np.array_equal(stat, _source_stat(tfrecord)):
        return False
    return bool(_native.index_is_current(os.fspath(tfrecord), np.ascontiguousarray(records)))


def _current_index(tfrecord: Path) -> np.ndarray | None:
    """The records of the first existing index that is still current, else None."""
    for candidate in _candidate_indexes(tfrecord):
        if not candidate.is_file():
            continue
        try:
            records, stat = _read_index_file(candidate)
        except _UNREADABLE_INDEX:
            continue  # unreadable or malformed index: rebuild rather than trust it
        if _is_current(tfrecord, records, stat):
            return records
    return None


def _write_index(
    tfrecord: Path, records: np.ndarray, locations: np.ndarray | None, stat: np.ndarray
) -> Path:
    target = index_path(tfrecord)
    arrays: dict[str, Any] = {"arr_0": records, "source_stat": stat}
    if locations is not None:
        arrays["locations"] = locations
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def index_reports(paths: Sequence[PathLike], *, force: bool = False) -> list[str | BaseException]:
    """Like ``build_indexes`` but never raises for a bad file: one entry per path, the index path
    or the exception that file raised (used by ``jaxwsi tfrecord index``)."""
    tfrecords = [Path(p) for p in paths]
    todo = [
        i
        for i, t in enumerate(tfrecords)
        if force or not index_path(t).is_file() or not _npz_is_current(t, index_path(t))
    ]
    # Stat before scanning: a file modified during the scan then reads as stale next time.
    stats: dict[int, np.ndarray] = {}
    for i in todo:
        with contextlib.suppress(OSError):  # the scan below reports the error with the path
            stats[i] = _source_stat(tfrecords[i])
    results = _native.scan_indexes([os.fspath(tfrecords[i]) for i in todo], True)
    reports: list[str | BaseException] = [os.fspath(index_path(t)) for t in tfrecords]
    for i, result in zip(todo, results, strict=True):
        if isinstance(result, BaseException):
            reports[i] = result
        else:
            records, locations = result
            _write_index(tfrecords[i], records, locations, stats[i])
    return reports


def build_indexes(paths: Sequence[PathLike], *, force: bool = False) -> list[str]:
    """Builds (or keeps, when current and not ``force``) the ``.index.npz`` of many TFRecords.

    Scanning runs in parallel over files in native code with the GIL released. All good files
    get their index; then the first failure (in input order) is raised: ``TFRecordError`` for
    malformed or compressed files, ``FileNotFoundError``/``PermissionError``/``IsADirectoryError``
    for the rest; several bad files raise one ``TFRecordError`` naming each. Returns the index
    paths, in input order.
    """
    reports = index_reports(paths, force=force)
    raise_damaged(
        [
            (os.fspath(p), r)
            for p, r in zip(paths, reports, strict=True)
            if isinstance(r, BaseException)
        ]
    )
    return [str(r) for r in reports]


def _npz_is_current(tfrecord: Path, target: Path) -> bool:
    try:
        records, stat = _read_index_file(target)
        return _is_current(tfrecord, records, stat)
    except _UNREADABLE_INDEX:
        return False


def build_index(path: PathLike, *, force: bool = False) -> str:
    """Builds ``{name}.index.npz`` for one TFRecord unless a current one exists; returns its path.

    With ``force`` the index is always rebuilt. Raises like ``build_indexes``.
    """
    return build_indexes([path], force=force)[0]


def _folder_is_writable(tfrecord: Path) -> bool:
    """Whether an index may be saved beside ``tfrecord``: the folder is writable for this user
    and not marked read-only in its mode bits (root could write into an ``r-x`` folder, but such a
    folder is a shared dataset to leave alone)."""
    try:
        mode = os.stat(tfrecord.parent).st_mode
    except OSError:
        return False
    return os.access(tfrecord.parent, os.W_OK) and bool(mode & 0o222)


Scanned = tuple[np.ndarray, np.ndarray | None]


def _scan_and_cache(
    tfrecords: Sequence[Path], on_error: str = "raise"
) -> tuple[list[Scanned], list[Damaged]]:
    """Scans ``tfrecords`` in parallel (native, GIL released) and saves each whole
    ``.index.npz``; where the folder is read-only or saving fails, the index is kept in memory,
    with a warning. Returns (records, locations) per file and the damaged files: with
    ``on_error="raise"`` every damaged file is named in the exception (after the good ones are
    saved); with ``"skip"`` a damaged file gives the index of its records before the first bad
    one (not saved)."""
    stats: dict[Path, np.ndarray] = {}
    for t in tfrecords:  # before scanning: see index_reports
        with contextlib.suppress(OSError):  # the scan reports a missing file with its path
            stats[t] = _source_stat(t)
    results = _native.scan_indexes_partial([os.fspath(t) for t in tfrecords], True)
    scanned: list[Scanned] = []
    errors: list[tuple[str, BaseException]] = []
    damaged: list[Damaged] = []
    for tfrecord, (records, locations, error) in zip(tfrecords, results, strict=True):
        scanned.append((records, locations))
        if error is not None:
            offset, exc = error
            errors.append((os.fspath(tfrecord), exc))
            damaged.append(
                Damaged(os.fspath(tfrecord), int(offset), f"{type(exc).__name__}: {exc}")
            )
            continue
        try:
            if not _folder_is_writable(tfrecord):
                raise PermissionError(f"{tfrecord.parent} is read-only")
            _write_index(tfrecord, records, locations, stats[tfrecord])
        except OSError as e:
            warnings.warn(f"{tfrecord}: index not saved ({e}); using it from memory", stacklevel=3)
    if on_error == "raise":
        raise_damaged(errors)
    return scanned, damaged


def load_indexes_and_damage(
    paths: Sequence[PathLike], *, on_error: str = "raise"
) -> tuple[list[np.ndarray], list[Damaged]]:
    """The int64 [N,2] (offset, framed length) index of each TFRecord in ``paths``, and the
    damaged files (always empty with ``on_error="raise"``, which raises naming each instead).

    Uses ``.index.npz``, ``.index.npy`` or a text ``.index`` where one is current; the others are
    scanned in parallel and saved as ``.index.npz`` (kept in memory only, with a warning, where
    the folder is read-only or cannot be written).
    """
    tfrecords = [Path(p) for p in paths]
    found = [_current_index(t) for t in tfrecords]
    todo = [i for i, records in enumerate(found) if records is None]
    scanned, damaged = _scan_and_cache([tfrecords[i] for i in todo], on_error)
    for i, (records, _) in zip(todo, scanned, strict=True):
        found[i] = records
    return [np.asarray(r, dtype=np.int64).reshape(-1, 2) for r in found], damaged


def warn_damaged(damaged: Sequence[Damaged], *, stacklevel: int = 2) -> None:
    """One RuntimeWarning naming every damaged file and where its readable part ends."""
    if damaged:
        lines = "\n".join(f"  {d.path} (from byte offset {d.offset}): {d.message}" for d in damaged)
        warnings.warn(
            f"{len(damaged)} damaged TFRecord(s); only their records before the bad one are "
            f"used:\n{lines}",
            RuntimeWarning,
            stacklevel=stacklevel + 1,
        )


def load_indexes(paths: Sequence[PathLike], *, on_error: str = "raise") -> list[np.ndarray]:
    """The int64 [N,2] (offset, framed length) index of each TFRecord in ``paths`` (see
    `load_indexes_and_damage`); with ``on_error="skip"`` damaged files give their readable
    records, with a warning naming them."""
    indexes, damaged = load_indexes_and_damage(paths, on_error=on_error)
    warn_damaged(damaged)
    return indexes


def load_index(path: PathLike) -> np.ndarray:
    """The int64 [N,2] (offset, framed length) index of the TFRecord ``path`` (see
    `load_indexes`)."""
    return load_indexes([path])[0]


def load_locations(path: PathLike) -> np.ndarray | None:
    """The int64 [N,2] (loc_x, loc_y) of every record of ``path``, or None when not all records
    have them. Uses the ``.index.npz`` when current, otherwise scans (and saves) like
    ``load_index``."""
    tfrecord = Path(path)
    target = index_path(tfrecord)
    if target.is_file() and _npz_is_current(tfrecord, target):
        with np.load(target) as npz:
            if "locations" not in npz.files:
                return None
            return np.asarray(npz["locations"], dtype=np.int64)
    return _scan_and_cache([tfrecord])[0][0][1]
