"""Small generated TFRecords of tiles for the loader tests (written with jaxwsi.io.TFRecordWriter).

Every record is identifiable: ``loc_x = 1000 * file + record`` and ``loc_y = record``, so tests
can tell exactly which (file, record) pairs a stream produced.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from jaxwsi.io import TFRecordWriter


def tile(seed: int, size: int = 16) -> np.ndarray:
    """A smooth random RGB tile (JPEG-friendly, not flat)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.BILINEAR))


def encode(image: np.ndarray, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt, quality=95)
    return buf.getvalue()


def write_file(
    path: Path,
    file_id: int,
    count: int,
    *,
    slide: str | None = None,
    size: int = 16,
    image_bytes: dict[int, bytes] | None = None,
) -> Path:
    """`count` JPEG tile records for slide `slide` (default ``slide{file_id}``)."""
    with TFRecordWriter(path) as writer:
        for i in range(count):
            raw = (image_bytes or {}).get(i) or encode(tile(1000 * file_id + i, size))
            writer.write(
                {
                    "image_raw": raw,
                    "slide": slide or f"slide{file_id}",
                    "loc_x": 1000 * file_id + i,
                    "loc_y": i,
                }
            )
    return path


def write_files(folder: Path, counts: list[int], size: int = 16) -> list[str]:
    """One file per entry of `counts`, named ``f{i}.tfrecords``."""
    return [
        str(write_file(folder / f"f{i}.tfrecords", i, n, size=size)) for i, n in enumerate(counts)
    ]


def pairs(batch: dict[str, np.ndarray]) -> list[tuple[int, int]]:
    """(file, record) of each tile of a batch made with ``incl_loc=True``."""
    return [(int(x) // 1000, int(y)) for x, y in zip(batch["loc_x"], batch["loc_y"], strict=True)]
