"""Reading and writing TFRecord files of ``tf.train.Example`` records (native, CRC-verified).

``read_records`` streams dicts with both CRCs of every record verified (GZIP/ZLIB-compressed
files are detected and read as a stream). ``TFRecordWriter`` writes to a temporary file in the
target folder and renames it on close, so an interrupted write never leaves a partial file under
the final name. A zero-length record is a valid, empty Example and reads as ``{}``.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from jaxwsi import _native
from jaxwsi.io.features import to_native_features

# A decoded record: bytes (1 value) / list[bytes] / np.int64 array / np.float32 array.
Record = dict[str, Any]


def iter_records_with_offsets(
    path: str | os.PathLike[str], *, verify: bool = True
) -> Iterator[tuple[int, int, Record]]:
    """Yields ``(offset, framed_length, features)`` for every record of ``path``.

    Opening happens at call time, so a missing file raises here, not on the first ``next``.
    """
    return iter(_native.open_records(os.fspath(path), verify))


def read_records(path: str | os.PathLike[str], *, verify: bool = True) -> Iterator[Record]:
    """Iterates over the records of a TFRecord file as feature dicts.

    A bytes_list of one value becomes ``bytes``, of several (or none) ``list[bytes]``; an
    int64_list a 1-D ``np.int64`` array; a float_list a 1-D ``np.float32`` array; a Feature with no
    list set reads as ``[]``. Keys keep their order in the record. With ``verify`` (the default)
    both CRC32Cs of every record are checked. Raises ``TFRecordError`` (naming the file and
    byte offset) at the first malformed record.
    """
    records = iter_records_with_offsets(path, verify=verify)
    return (features for _, _, features in records)


def encode_example(features: Mapping[str, Any]) -> bytes:
    """Serializes a feature dict to ``tf.train.Example`` bytes (same rules as the writer)."""
    return bytes(_native.encode_example_bytes(to_native_features(features)))


class TFRecordWriter:
    """Writes ``tf.train.Example`` records to ``path`` atomically.

    Use as a context manager. Records go to a hidden temporary file beside ``path``; ``close()``
    (or leaving the ``with`` block normally) flushes, fsyncs and renames it to ``path``. If the
    block raises, the temporary file is removed and ``path`` is left untouched.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        folder = self.path.parent
        if not folder.is_dir():
            # Name the folder, not the hidden temporary file the native writer would report.
            what = "is not a folder" if folder.exists() else "No such folder"
            raise FileNotFoundError(
                errno.ENOENT, f"{what} (cannot write {self.path.name})", str(folder)
            )
        token = secrets.token_hex(4)
        self._tmp_path = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}-{token}")
        self._writer: Any = _native.RecordFileWriter(os.fspath(self._tmp_path))
        self._closed = False
        self.records_written = 0

    def write(self, features: Mapping[str, Any]) -> None:
        """Appends one record; see ``jaxwsi.io.features`` for how values are typed."""
        if self._closed:
            raise ValueError(f"write to a closed TFRecordWriter for {self.path}")
        self._writer.write_example(to_native_features(features))
        self.records_written += 1

    def write_raw(self, data: bytes) -> None:
        """Appends one record holding ``data`` as is (e.g. an already serialized Example)."""
        if self._closed:
            raise ValueError(f"write to a closed TFRecordWriter for {self.path}")
        self._writer.write_record(data)
        self.records_written += 1

    def close(self) -> None:
        """Finishes the file: flush, fsync, rename to ``path``. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.close()
            os.replace(self._tmp_path, self.path)
        except BaseException:
            self._tmp_path.unlink(missing_ok=True)
            raise

    def abort(self) -> None:
        """Discards everything written: removes the temporary file, leaves ``path`` untouched."""
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.close()
        finally:
            self._tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> TFRecordWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
