"""Human-readable summaries of TFRecord files and records (for ``jaxwsi tfrecord info|dump``)."""

from __future__ import annotations

import io
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jaxwsi import _native

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def image_format(data: bytes) -> str:
    """``jpeg``, ``png`` or ``unknown``, from the encoded image's magic bytes."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(_PNG_MAGIC):
        return "png"
    return "unknown"


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of an encoded image, read from its header only; None if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None


@dataclass
class FileInfo:
    """What ``summarize`` found in one TFRecord of tiles."""

    path: str
    compression: str = "none"
    records: int = 0
    slides: Counter[str] = field(default_factory=Counter)
    image_formats: Counter[str] = field(default_factory=Counter)
    tile_sizes: Counter[tuple[int, int]] = field(default_factory=Counter)
    feature_keys: list[str] = field(default_factory=list)


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def summarize(path: str | os.PathLike[str], *, sizes_from: int = 1) -> FileInfo:
    """Reads every record of ``path`` (CRC-verified): counts records per slide and image format;
    the tile size is read from the image headers of the first ``sizes_from`` records."""
    records = _native.open_records(os.fspath(path), True)
    info = FileInfo(os.fspath(path), compression=records.compression)
    keys: dict[str, None] = {}
    for _, _, features in records:
        info.records += 1
        keys.update(dict.fromkeys(features))
        slide = _text(features.get("slide"))
        if slide is not None:
            info.slides[slide] += 1
        image = features.get("image_raw")
        if isinstance(image, bytes):
            info.image_formats[image_format(image)] += 1
            if info.records <= sizes_from and (size := image_size(image)) is not None:
                info.tile_sizes[size] += 1
    info.feature_keys = list(keys)
    return info


def describe_value(value: Any, *, max_items: int = 8) -> str:
    """A one-line description of a decoded feature value."""
    if isinstance(value, bytes):
        text = _text(value)
        if text is not None and len(text) <= 64 and text.isprintable():
            return repr(text)
        kind = image_format(value)
        label = f"{kind} image" if kind != "unknown" else "bytes"
        return f"<{label}, {len(value)} bytes>"
    if isinstance(value, list):
        return "[" + ", ".join(describe_value(v) for v in value[:max_items]) + "]"
    if isinstance(value, np.ndarray):
        shown = np.array2string(value[:max_items], separator=", ")
        more = f" … ({value.size} values)" if value.size > max_items else ""
        return f"{value.dtype.name}{shown}{more}"
    return repr(value)
