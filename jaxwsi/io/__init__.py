"""TFRecord reading, writing, indexing and the native interleaving loader."""

from jaxwsi.io.errors import InternalError, TFRecordError
from jaxwsi.io.index import (
    Damaged,
    build_index,
    build_indexes,
    index_path,
    load_index,
    load_indexes,
    load_indexes_and_damage,
    load_locations,
)
from jaxwsi.io.indexed_source import IndexedSource
from jaxwsi.io.interleaver import Interleaver
from jaxwsi.io.records import (
    TFRecordWriter,
    encode_example,
    iter_records_with_offsets,
    read_records,
)
from jaxwsi.io.settings import LoaderSettings
from jaxwsi.io.verify import FileReport, verify_files

__all__: list[str] = [
    "Damaged",
    "FileReport",
    "IndexedSource",
    "Interleaver",
    "InternalError",
    "LoaderSettings",
    "TFRecordError",
    "TFRecordWriter",
    "build_index",
    "build_indexes",
    "encode_example",
    "index_path",
    "iter_records_with_offsets",
    "load_index",
    "load_indexes",
    "load_indexes_and_damage",
    "load_locations",
    "read_records",
    "verify_files",
]
