"""Conversion of Python feature values to ``tf.train.Example`` feature lists.

Rules: ``bytes``/``str`` (or a sequence of them) → bytes_list; ``int`` (or an int sequence or
integer/bool array) → int64_list; ``float`` (or a float sequence or float array) → float_list.
A sequence that mixes ints and floats becomes a float_list. Empty sequences are rejected because
their type is unknown (pass an empty numpy array with a dtype instead).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# (key, kind, value) as the native encoder expects: kind is "bytes", "int64" or "float".
NativeFeature = tuple[str, str, Any]

_INT64 = np.iinfo(np.int64)


def _bytes_value(key: str, value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes | bytearray | memoryview | np.bytes_):
        return bytes(value)
    raise TypeError(f"feature {key!r}: cannot mix bytes/str with {type(value).__name__}")


def _int_array(key: str, values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind == "u" and array.size and int(array.max()) > _INT64.max:
        raise ValueError(f"feature {key!r}: value {int(array.max())} does not fit in int64")
    try:
        return np.ascontiguousarray(array, dtype=np.int64).reshape(-1)
    except OverflowError as e:
        raise ValueError(f"feature {key!r}: value does not fit in int64") from e


def _array_feature(key: str, array: np.ndarray) -> NativeFeature:
    if array.ndim > 1:
        raise ValueError(
            f"feature {key!r}: expected a scalar or 1-D array, got shape {array.shape}"
        )
    kind = array.dtype.kind
    if kind in "iub":
        return key, "int64", _int_array(key, array)
    if kind == "f":
        return key, "float", np.ascontiguousarray(array, dtype=np.float32).reshape(-1)
    if kind in "SO":
        return key, "bytes", [_bytes_value(key, v) for v in array.reshape(-1).tolist()]
    if kind == "U":
        return key, "bytes", [v.encode("utf-8") for v in array.reshape(-1).tolist()]
    raise TypeError(f"feature {key!r}: unsupported array dtype {array.dtype}")


def _sequence_feature(key: str, values: Sequence[Any]) -> NativeFeature:
    if len(values) == 0:
        raise ValueError(
            f"feature {key!r}: empty sequence has no type; pass e.g. np.array([], dtype=np.int64)"
        )
    if all(isinstance(v, str | bytes | bytearray | memoryview | np.bytes_) for v in values):
        return key, "bytes", [_bytes_value(key, v) for v in values]
    if all(isinstance(v, int | np.integer) for v in values):
        try:
            return key, "int64", _int_array(key, list(values))
        except OverflowError as e:
            raise ValueError(f"feature {key!r}: value does not fit in int64") from e
    if all(isinstance(v, int | float | np.integer | np.floating) for v in values):
        return key, "float", np.asarray(values, dtype=np.float32)
    kinds = sorted({type(v).__name__ for v in values})
    raise TypeError(f"feature {key!r}: cannot encode a sequence of {', '.join(kinds)}")


def to_native_feature(key: str, value: Any) -> NativeFeature:
    """Converts one feature value to the native encoder's ``(key, kind, value)`` form."""
    if not isinstance(key, str):
        raise TypeError(f"feature keys must be str, got {type(key).__name__}")
    if isinstance(value, str | bytes | bytearray | memoryview | np.bytes_):
        return key, "bytes", [_bytes_value(key, value)]
    if isinstance(value, bool | int | np.integer):
        return key, "int64", _int_array(key, [value])
    if isinstance(value, float | np.floating):
        return key, "float", np.asarray([value], dtype=np.float32)
    if isinstance(value, np.ndarray):
        return _array_feature(key, value)
    if isinstance(value, Sequence):
        return _sequence_feature(key, value)
    raise TypeError(f"feature {key!r}: cannot encode a value of type {type(value).__name__}")


def to_native_features(features: Mapping[str, Any]) -> list[NativeFeature]:
    """Converts a feature dict (see the module docstring for the rules)."""
    if not isinstance(features, Mapping):
        raise TypeError(
            f"features must be a mapping of str to values, got {type(features).__name__}"
        )
    return [to_native_feature(k, v) for k, v in features.items()]
