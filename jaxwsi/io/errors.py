"""The exception raised for malformed TFRecord files.

``TFRecordError`` is defined in the native module (so Rust bindings raise it directly) and
re-exported here; it subclasses ``ValueError``. Its message names the file and the byte offset of
the bad record's length header, e.g.
``slide_a.tfrecords: corrupted record at byte offset 4548: bad length CRC32C (...)``.
Missing files raise ``FileNotFoundError``, unreadable ones ``PermissionError``, directories
``IsADirectoryError``.
"""

from __future__ import annotations

from jaxwsi._native import TFRecordError

__all__ = ["TFRecordError"]
