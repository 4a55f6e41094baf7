"""Type stub for `jaxwsi._native`, the PyO3 bindings over the Rust core (rust/python/src/).

The Python modules in `jaxwsi.io` and `jaxwsi.norm` wrap these; call those instead. Every function
that touches files or pixels releases the GIL. Malformed TFRecords raise `TFRecordError`; missing,
unreadable and directory paths raise `FileNotFoundError`, `PermissionError`, `IsADirectoryError`;
a Rust panic raises `InternalError` (a `RuntimeError`).
"""

from collections.abc import Iterator, Sequence
from os import PathLike
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

__version__: str

Path = str | PathLike[str]
# A feature to encode: (key, kind, value) with kind "bytes" (list of bytes), "int64" (1-D int64
# array) or "float" (1-D float32 array).
FeatureSpec = tuple[str, str, Any]
Records = NDArray[np.int64]  # [N, 2]: offset of the length header, framed length

class TFRecordError(ValueError):
    """A malformed TFRecord: the message names the file and the byte offset of the record."""

class InternalError(RuntimeError):
    """A Rust panic (a bug in jaxwsi, not bad input)."""

def _panic_for_test(message: str) -> None: ...

# ---- records (rust/python/src/records.rs) ----

class RecordIterator:
    """Iterator over `(offset, framed_length, features)` of a TFRecord file."""

    @property
    def compression(self) -> Literal["none", "gzip", "zlib"]: ...
    def __iter__(self) -> Iterator[tuple[int, int, dict[str, Any]]]: ...
    def __next__(self) -> tuple[int, int, dict[str, Any]]: ...

def open_records(path: Path, verify: bool = True) -> RecordIterator: ...

class RecordFileWriter:
    """Appends framed records to a file (the caller handles the temporary name and rename)."""

    def __init__(self, path: Path) -> None: ...
    def write_example(self, features: list[FeatureSpec]) -> tuple[int, int]: ...
    def write_record(self, data: bytes) -> tuple[int, int]: ...
    def close(self) -> None: ...

def encode_example_bytes(features: list[FeatureSpec]) -> bytes: ...
def index_is_current(path: Path, records: Records) -> bool: ...
def scan_indexes(
    paths: Sequence[Path], with_locations: bool = True
) -> list[tuple[Records, NDArray[np.int64] | None] | BaseException]: ...
def scan_indexes_partial(
    paths: Sequence[Path], with_locations: bool = True
) -> list[tuple[Records, NDArray[np.int64] | None, tuple[int, BaseException] | None]]: ...
def verify_paths(
    paths: Sequence[Path], parse: bool = True
) -> list[tuple[int, int, str] | BaseException]: ...

# ---- loader (rust/python/src/loader.rs) ----

class NativeLoader:
    """The native loader of one shard; `jaxwsi.io.Interleaver` wraps it."""

    def __init__(
        self,
        paths: Sequence[Path],
        records: Sequence[Records],
        *,
        weights: Sequence[float] | None,
        clip: Sequence[int] | None,
        label_slides: Sequence[str] | None,
        settings: Any,  # a resolved jaxwsi.io.LoaderSettings, read by attribute
    ) -> None: ...
    @property
    def epoch(self) -> int: ...
    @property
    def records_per_epoch(self) -> int: ...
    @property
    def batches_per_epoch(self) -> int: ...
    def next_batch(self) -> dict[str, Any] | None: ...
    def load(self, files: Sequence[int], records: Sequence[int]) -> dict[str, Any]: ...
    def shard_items(self) -> tuple[list[int], list[int]]: ...
    def start_epoch(self, epoch: int) -> None: ...
    def state(self) -> tuple[int, int, list[int]]: ...
    def set_state(self, epoch: int, step: int, draws: Sequence[int]) -> None: ...

# ---- stain normalization kernels (rust/python/src/stain.rs) ----

def reinhard_transform(
    images: NDArray[np.uint8],
    target_means: NDArray[np.float32],
    target_stds: NDArray[np.float32],
    out: NDArray[np.uint8],
    *,
    brightness_percentile: float | None,
    mask_threshold: float | None,
    min_std: float,
    min_tissue_pixels: int,
) -> None: ...
def od_tissue_covariance(
    images: NDArray[np.uint8], threshold: float
) -> tuple[NDArray[np.float32], NDArray[np.uint64]]: ...
def od_angle_percentiles(
    images: NDArray[np.uint8],
    planes: NDArray[np.float32],
    threshold: float,
    qs: Sequence[float],
) -> NDArray[np.float32]: ...
def od_reconstruct(
    images: NDArray[np.uint8],
    inverses: NDArray[np.float32],
    stains: NDArray[np.float32],
    max_concentrations: NDArray[np.float32],
    normalize: NDArray[np.bool_],
    q: float,
    out: NDArray[np.uint8],
) -> None: ...
