"""Slideflow-compatible record indexes: ``{name}.index.npz`` beside each TFRecord.

The file holds ``arr_0`` (int64 [N,2]: offset of each record's length header, framed length
8+4+len+4) and, when every record has ``loc_x``/``loc_y``, ``locations`` (int64 [N,2]), exactly
as Slideflow writes it, plus ``source_stat`` (int64 [2]: the TFRecord's size and mtime in ns when
indexed), which Slideflow ignores. Slideflow's older ``.index.npy`` and text ``.index`` are read
too.

An index is trusted only while it still describes its TFRecord: the stored size/mtime must match
(when present), the records must tile the file exactly, sampled record headers must carry valid
length CRCs and the indexed lengths, and the last record must verify. Otherwise it is stale and is
rebuilt (a new ``.index.npz``; legacy files are left alone). Building scans with both CRCs
verified, in parallel over files in native code.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxwsi import _native

INDEX_SUFFIX = ".index.npz"
_LEGACY_SUFFIXES = (".index.npy", ".index")
_TFRECORD_SUFFIXES = (".tfrecords", ".tfrecord")

PathLike = str | os.PathLike[str]


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
        except (ValueError, OSError, KeyError):
            continue  # unreadable or malformed index: rebuild rather than trust it
        if _is_current(tfrecord, records, stat):
            return records
    return None


def _write_index(
    tfrecord: Path, records: np.ndarray, locations: np.ndarray | None, stat: np.ndarray
) -> Path:
    target = index_path(tfrecord)
    arrays = {"arr_0": records, "source_stat": stat}
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
    for the rest. Returns the index paths, in input order.
    """
    reports = index_reports(paths, force=force)
    for report in reports:
        if isinstance(report, BaseException):
            raise report
    return [str(r) for r in reports]


def _npz_is_current(tfrecord: Path, target: Path) -> bool:
    try:
        records, stat = _read_index_file(target)
        return _is_current(tfrecord, records, stat)
    except (ValueError, OSError, KeyError):
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


def _scan_and_cache(tfrecords: Sequence[Path]) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Scans ``tfrecords`` in parallel (native, GIL released) and saves each ``.index.npz``;
    where the folder is read-only or saving fails, the index is kept in memory, with a warning.
    Returns (records, locations) per file; the first bad file (in input order) raises."""
    stats = [_source_stat(t) for t in tfrecords]  # before scanning: see index_reports
    results = _native.scan_indexes([os.fspath(t) for t in tfrecords], True)
    scanned = []
    for tfrecord, stat, result in zip(tfrecords, stats, results, strict=True):
        if isinstance(result, BaseException):
            raise result
        records, locations = result
        try:
            if not _folder_is_writable(tfrecord):
                raise PermissionError(f"{tfrecord.parent} is read-only")
            _write_index(tfrecord, records, locations, stat)
        except OSError as e:
            warnings.warn(f"{tfrecord}: index not saved ({e}); using it from memory", stacklevel=3)
        scanned.append((records, locations))
    return scanned


def load_indexes(paths: Sequence[PathLike]) -> list[np.ndarray]:
    """The int64 [N,2] (offset, framed length) index of each TFRecord in ``paths``.

    Uses ``.index.npz``, ``.index.npy`` or a text ``.index`` where one is current; the others are
    scanned in parallel and saved as ``.index.npz`` (kept in memory only, with a warning, where
    the folder is read-only or cannot be written).
    """
    tfrecords = [Path(p) for p in paths]
    found = [_current_index(t) for t in tfrecords]
    todo = [i for i, records in enumerate(found) if records is None]
    for i, (records, _) in zip(todo, _scan_and_cache([tfrecords[i] for i in todo]), strict=True):
        found[i] = records
    return found


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
    return _scan_and_cache([tfrecord])[0][1]
