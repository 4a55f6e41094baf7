"""The exceptions of the record layer, defined in the native module and re-exported here.

``TFRecordError`` (a ``ValueError``): a malformed TFRecord file or record, including a corrupt
GZIP/ZLIB stream; its message names the file and the byte offset of the bad record's length
header, e.g. ``slide_a.tfrecords: corrupted record at byte offset 4548: bad length CRC32C (...)``.
Missing files raise ``FileNotFoundError``, unreadable ones ``PermissionError``, directories
``IsADirectoryError``.

``InternalError`` (a ``RuntimeError``, deliberately not a ``ValueError``): a panic in jaxwsi's
Rust code, i.e. a bug, never bad input; an ``except ValueError`` around bad input never hides it,
and it never aborts the Python process.
"""

from __future__ import annotations

from jaxwsi._native import InternalError, TFRecordError

__all__ = ["InternalError", "TFRecordError"]
