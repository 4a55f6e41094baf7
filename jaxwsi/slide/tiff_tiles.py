"""Direct tile decoding for pyramid levels stored as tiled JPEG TIFF pages (generic TIFF, SVS …).

OpenSlide decodes a JPEG tile to premultiplied ARGB, which Python then converts to RGBA and RGB;
decoding the tile's JPEG straight to RGB with tifffile (libjpeg-turbo via imagecodecs) gives the
same pixels at a fraction of the cost. ``WSI`` uses a ``TiffLevelReader`` only after checking, on
the slide itself, that it returns exactly what OpenSlide's ``read_region`` returns; otherwise it
keeps reading through OpenSlide.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

_JPEG = 7  # TIFF Compression tag


class TiffLevelReader:
    """Reads RGB regions (level pixel coordinates) of one tiled 8-bit RGB JPEG TIFF page."""

    def __init__(self, tif: tifffile.TiffFile, page: tifffile.TiffPage) -> None:
        self._tif = tif
        self._page = page
        self.height, self.width = page.imagelength, page.imagewidth
        self.tile_h, self.tile_w = page.tilelength, page.tilewidth
        self._tiles_across = -(-self.width // self.tile_w)
        # Read once here: building the decoder and reading the JPEG tables move the file position.
        self._decode = page.decode
        self._jpegtables = page.jpegtables
        self._cache: dict[int, np.ndarray] = {}  # decoded tiles of the current tile row(s)

    @classmethod
    def open(cls, path: Path, size: tuple[int, int]) -> TiffLevelReader | None:
        """The reader for the page of ``size`` (width, height), or None if there is no such
        tiled JPEG RGB page (or the file is not a TIFF)."""
        try:
            tif = tifffile.TiffFile(path)
        except (tifffile.TiffFileError, OSError, ValueError):
            return None
        for page in tif.pages:
            if (
                isinstance(page, tifffile.TiffPage)
                and page.is_tiled
                and (page.imagewidth, page.imagelength) == size
                and page.compression == _JPEG
                and page.samplesperpixel == 3
                and page.bitspersample == 8
                and page.imagedepth == 1
                and page.planarconfig == 1
            ):
                return cls(tif, page)
        tif.close()
        return None

    def close(self) -> None:
        """Close the TIFF file."""
        self._tif.close()

    def read(self, x: int, y: int, width: int, height: int) -> np.ndarray:
        """RGB uint8 [height, width, 3] at level pixel (x, y); white outside the page."""
        out = np.full((height, width, 3), 255, np.uint8)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + width, self.width), min(y + height, self.height)
        if x0 >= x1 or y0 >= y1:
            return out
        wanted = set()
        for ty in range(y0 // self.tile_h, (y1 - 1) // self.tile_h + 1):
            for tx in range(x0 // self.tile_w, (x1 - 1) // self.tile_w + 1):
                index = ty * self._tiles_across + tx
                wanted.add(index)
                tile = self._tile(index)
                if tile is None:
                    continue  # a tile missing from the file reads as background
                top, left = ty * self.tile_h, tx * self.tile_w
                sy0, sy1 = max(y0, top), min(y1, top + self.tile_h)
                sx0, sx1 = max(x0, left), min(x1, left + self.tile_w)
                out[sy0 - y : sy1 - y, sx0 - x : sx1 - x] = tile[
                    sy0 - top : sy1 - top, sx0 - left : sx1 - left
                ]
        # Keep only this region's tiles: the next region (same or next row) reuses the overlap.
        self._cache = {i: t for i, t in self._cache.items() if i in wanted}
        return out

    def _tile(self, index: int) -> np.ndarray | None:
        if index not in self._cache:
            offset = self._page.dataoffsets[index]
            count = self._page.databytecounts[index]
            if count == 0:
                return None
            handle = self._tif.filehandle
            handle.seek(offset)
            decoded = self._decode(handle.read(count), index, jpegtables=self._jpegtables)[0]
            if decoded is None:
                raise ValueError(f"TIFF tile {index} did not decode")
            self._cache[index] = decoded.reshape(decoded.shape[-3:])
        return self._cache[index]
