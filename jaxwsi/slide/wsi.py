"""``WSI``: one whole-slide image opened with OpenSlide, its tile grid, tile filters and tile reads.

Reading is batched: the tiles kept in one grid row are cut from one region read at the chosen
pyramid level, instead of one read per tile. A region comes from OpenSlide's ``read_region``, or,
for tiled JPEG TIFF levels, from decoding the TIFF tiles directly (``tiff_tiles``) once a check on
the slide has shown that gives OpenSlide's exact pixels. Filters and QC run on a downsampled image
of the whole slide, so tiles of background are rejected before full-resolution pixels are read.
OpenSlide handles do not pickle: worker processes open their own ``WSI`` from the path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openslide
import tifffile
from PIL import Image

from jaxwsi.slide import filters
from jaxwsi.slide import qc as slide_qc
from jaxwsi.slide.errors import MissingMPPError, SlideError
from jaxwsi.slide.grid import (
    TileGeometry,
    grid_positions,
    slideflow_filter_crop,
    tile_geometry,
)
from jaxwsi.slide.roi import ROI, load_rois, roi_keep
from jaxwsi.slide.tiff_tiles import TiffLevelReader

_THUMBNAIL_MAX_SIDE = 1024  # the filter/QC image aims at this size …
_THUMBNAIL_TILE_PX = 16  # … with 16 to 64 pixels per tile side
_MAX_READ_WIDTH = 16384  # level pixels per read_region call
_STRIP_PIXELS = 1 << 24  # pixels per read_region call when reading a whole level
_TIFF_UNIT_MICRONS = {2: 25400.0, 3: 10000.0}  # ResolutionUnit inch, centimetre → µm


@dataclass(frozen=True)
class TileSelection:
    """Which grid tiles pass the ROI, filters and QC, with the per-tile fractions behind it."""

    keep: np.ndarray  # bool [N]
    in_roi: np.ndarray  # bool [N]
    whitespace: np.ndarray  # float [N] white fraction of each footprint
    grayspace: np.ndarray  # float [N] gray fraction
    qc_masked: np.ndarray  # float [N] QC-masked fraction (zeros without QC)
    qc_mask: np.ndarray | None  # bool mask at the thumbnail's scale, True = excluded


def slide_name(path: str | os.PathLike[str]) -> str:
    """A slide's name: its file name without the extension (``a/b/x.svs`` → ``x``)."""
    return Path(path).stem


class WSI:
    """A slide, tiled at ``tile_px`` pixels covering ``tile_um`` µm (or a ``"10x"`` magnification).

    ``mpp`` overrides the slide's microns per level-0 pixel. ``rois`` is an ROI file (QuPath CSV or
    GeoJSON), a list of them, or a list of ``ROI``; ``roi_method`` is inside, outside, auto or
    ignore. ``stride_div`` > 1 overlaps tiles; ``use_edge_tiles`` keeps tiles that cross the slide
    edge (padded white). ``level_rule`` chooses the pyramid level read (``"direct"`` or
    ``"slideflow"``, see `jaxwsi.slide.grid`). Grid attributes: ``corners`` (level-0 top-left
    corners, int64 [N, 2]) and ``locations`` (level-0 tile centres, as stored in TFRecords).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        tile_px: int,
        tile_um: int | float | str,
        *,
        stride_div: int = 1,
        mpp: float | None = None,
        rois: str | Path | Sequence[str | Path | ROI] | None = None,
        roi_method: str = "auto",
        use_edge_tiles: bool = False,
        level_rule: str = "direct",
    ) -> None:
        self.path = Path(path)
        self.name = slide_name(path)
        self.tile_px = int(tile_px)
        self.tile_um = tile_um
        if mpp is not None and not mpp > 0:
            raise ValueError(f"{self.path}: mpp must be positive, got {mpp}")
        self._slide = _open(self.path)
        # Cached: an OpenSlide handle that hit a read error refuses even these afterwards.
        self.level_dimensions: tuple[tuple[int, int], ...] = self._slide.level_dimensions
        self.level_downsamples: tuple[float, ...] = self._slide.level_downsamples
        self.level_rule = level_rule
        try:
            self._tile(mpp, stride_div, use_edge_tiles, rois, roi_method)
        except BaseException:
            self._slide.close()
            raise
        self._thumbnail: tuple[np.ndarray, float] | None = None
        self._tiff_readers: dict[int, TiffLevelReader | None] = {}

    def _tile(
        self,
        mpp: float | None,
        stride_div: int,
        use_edge_tiles: bool,
        rois: str | Path | Sequence[str | Path | ROI] | None,
        roi_method: str,
    ) -> None:
        """MPP, tile geometry, grid and ROIs (the part of construction that can fail)."""
        self.mpp = float(mpp) if mpp is not None else detect_mpp(self._slide, self.path)
        self.geometry: TileGeometry = tile_geometry(
            self.tile_px,
            self.tile_um,
            self.mpp,
            self.level_downsamples,
            stride_div,
            level_rule=self.level_rule,
            slide_name=str(self.path),
        )
        g = self.geometry
        self.level_corners = grid_positions(
            self.level_dimensions[g.level], g.extract_px, g.stride_px, use_edge_tiles
        )
        self.corners = np.round(self.level_corners * g.downsample).astype(np.int64)
        self.locations = self.corners + g.full_extract_px // 2
        self.rois = _collect_rois(rois)
        self.in_roi = roi_keep(self.locations, self.rois, roi_method, slide_name=str(self.path))

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (width, height) in pixels."""
        return self.level_dimensions[0]

    def __len__(self) -> int:
        """Number of grid positions (before ROI, filters and QC)."""
        return len(self.corners)

    def close(self) -> None:
        """Release the OpenSlide handle and any TIFF readers."""
        for reader in self._tiff_readers.values():
            if reader is not None:
                reader.close()
        self._tiff_readers.clear()
        self._slide.close()

    def __enter__(self) -> WSI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_downsampled(self, downsample: float) -> tuple[np.ndarray, float]:
        """The whole slide as RGB at about ``downsample`` (never coarser): (image, downsample).

        Reads the best level row strip by row strip and box-reduces by a whole factor, so even
        slides without a pyramid never need their full level 0 in memory at once.
        """
        downsample = max(1.0, downsample)
        level = max(
            (i for i, d in enumerate(self.level_downsamples) if d <= downsample * 1.01), default=0
        )
        level_downsample = float(self.level_downsamples[level])
        factor = max(1, int(downsample / level_downsample + 1e-3))
        width, height = self.level_dimensions[level]
        strip = max(factor, (_STRIP_PIXELS // width // factor) * factor)
        parts = []
        for y in range(0, height, strip):
            rows = min(strip, height - y)
            region = self._read(level, (0, y), (width, rows))
            if factor > 1:
                region = np.asarray(Image.fromarray(region).reduce(factor))
            parts.append(region)
        return np.concatenate(parts, axis=0), level_downsample * factor

    def thumbnail(self) -> tuple[np.ndarray, float]:
        """The image filters and QC run on, and its downsample (cached).

        Its scale puts 16 to 64 pixels on a tile side; within that range, as close to 1024 px
        on the slide's long side as it can.
        """
        if self._thumbnail is None:
            by_size = max(self.dimensions) / _THUMBNAIL_MAX_SIDE
            coarsest = self.geometry.full_extract_px / _THUMBNAIL_TILE_PX
            finest = coarsest / 4
            self._thumbnail = self.read_downsampled(max(1.0, min(coarsest, max(by_size, finest))))
        return self._thumbnail

    def qc_mask(self, method: str | slide_qc.QCCallable) -> np.ndarray:
        """A QC mask (True = exclude) at the thumbnail's scale: otsu, blur, both or a callable."""
        slide_qc.check_qc(method)
        thumb, _ = self.thumbnail()
        if callable(method):
            return slide_qc.apply_custom_qc(method, thumb)
        mask = np.zeros(thumb.shape[:2], bool)
        if method in ("blur", "both"):
            # At 4× the tile's pixel size, as Slideflow's GaussianV2.
            pixel_um = self.geometry.tile_um / self.tile_px
            image, _ = self.read_downsampled(4 * pixel_um / self.mpp)
            blurry = Image.fromarray(slide_qc.blur_mask(image)).resize(
                (thumb.shape[1], thumb.shape[0]), Image.Resampling.NEAREST
            )
            mask |= np.asarray(blurry)
        if method in ("otsu", "both"):
            mask |= slide_qc.otsu_mask(thumb)
        return mask

    def select_tiles(
        self,
        *,
        whitespace_fraction: float = 1.0,
        whitespace_threshold: float = filters.WHITESPACE_THRESHOLD,
        grayspace_fraction: float = 0.6,
        grayspace_threshold: float = filters.GRAYSPACE_THRESHOLD,
        qc: str | slide_qc.QCCallable | None = None,
        qc_fraction: float = 0.6,
        filter_rule: str = "thumbnail",
    ) -> TileSelection:
        """Apply the ROIs, whitespace/grayspace filters and optional QC to the grid.

        A tile is dropped when its white fraction > ``whitespace_fraction`` (1.0 = off), its gray
        fraction > ``grayspace_fraction``, or its QC-masked fraction > ``qc_fraction``. The white
        and gray fractions come from the thumbnail, or with ``filter_rule="slideflow"`` from
        Slideflow's per-tile crops (see `jaxwsi.slide.filters`).
        """
        filters.check_filter_rule(filter_rule)
        thumb, downsample = self.thumbnail()
        footprint = self.geometry.full_extract_px

        def fractions(mask: np.ndarray) -> np.ndarray:
            return filters.footprint_fractions(mask, downsample, self.corners, footprint)

        if filter_rule == "slideflow":
            white, gray = self._crop_fractions(whitespace_threshold, grayspace_threshold)
        else:
            white = fractions(filters.white_mask(thumb, whitespace_threshold))
            gray = fractions(filters.gray_mask(thumb, grayspace_threshold))
        mask = self.qc_mask(qc) if qc is not None else None
        masked = fractions(mask) if mask is not None else np.zeros(len(self))
        keep = (
            self.in_roi
            & (white <= whitespace_fraction)
            & (gray <= grayspace_fraction)
            & (masked <= qc_fraction)
        )
        return TileSelection(keep, self.in_roi, white, gray, masked, mask)

    def _crop_fractions(
        self, whitespace_threshold: float, grayspace_threshold: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """White and gray fractions of every grid tile on Slideflow's filter crops
        (``jaxwsi.slide.grid.slideflow_filter_crop``), read one grid row at a time; a level with
        a fractional downsample is read whole (OpenSlide resamples a region that starts between
        its pixels, libvips crops the level's own pixels; such levels are the coarse ones)."""
        level, side = slideflow_filter_crop(
            self.level_downsamples, self.geometry.level, self.geometry.extract_px
        )
        downsample = float(self.level_downsamples[level])
        # libvips' read_region truncates level-0 corners to the level's pixels.
        origins = (self.corners / downsample).astype(np.int64)
        reads: list[tuple[np.ndarray, tuple[int, int], tuple[int, int]]] = []
        if downsample.is_integer():  # one read per grid row
            for y in np.unique(origins[:, 1]):
                row = np.flatnonzero(origins[:, 1] == y)
                x0 = int(origins[row, 0].min())
                width = int(origins[row, 0].max()) - x0 + side
                reads.append((row, (x0, int(y)), (width, side)))
        else:
            reads.append((np.arange(len(origins)), (0, 0), self.level_dimensions[level]))
        white, gray = np.ones(len(origins)), np.ones(len(origins))
        for row, corner, size in reads:
            region = self._read(level, corner, size)
            local = origins[row] - np.asarray(corner)
            white_mask = filters.white_mask(region, whitespace_threshold)
            gray_mask = filters.gray_mask(region, grayspace_threshold, uint8_saturation=True)
            white[row] = filters.window_fractions(white_mask, local, side)
            gray[row] = filters.window_fractions(gray_mask, local, side)
        return white, gray

    def read_tiles(self, indices: Sequence[int] | np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, RGB uint8 [tile_px, tile_px, 3])`` for the given grid tiles.

        Tiles come grouped by grid row: each run of nearby tiles in a row is one region read
        at the chosen level, cut into tiles and resized to ``tile_px`` when needed.
        """
        g = self.geometry
        indices = np.unique(np.asarray(indices, np.int64))
        if len(indices) and (indices[0] < 0 or indices[-1] >= len(self)):
            raise IndexError(f"{self.path}: tile index out of range [0, {len(self)})")
        corners = self.level_corners[indices]
        order = np.lexsort((corners[:, 0], corners[:, 1]))
        for run in _row_runs(corners[order], g.extract_px):
            xs, y = corners[order[run], 0], int(corners[order[run[0]], 1])
            x0 = int(xs[0])
            width = int(xs[-1]) - x0 + g.extract_px
            region = self._read(g.level, (x0, y), (width, g.extract_px))
            for i, x in zip(order[run], xs, strict=True):
                tile = region[:, x - x0 : x - x0 + g.extract_px]
                yield int(indices[i]), resize_tile(tile, self.tile_px)

    def _read(self, level: int, corner: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
        """RGB pixels of a region given in ``level`` pixels; outside the slide is white.

        Decodes the TIFF tiles directly when that was verified to equal OpenSlide on this slide,
        else uses ``read_region``.
        """
        reader = self._tiff_reader(level)
        if reader is not None:
            try:
                return reader.read(*corner, *size)
            except Exception as error:  # a corrupt tile: report it like OpenSlide would
                raise SlideError(
                    f"{self.path}: cannot decode region at {corner}, level {level} ({error})"
                ) from error
        return self._read_openslide(level, corner, size)

    def _read_openslide(
        self, level: int, corner: tuple[int, int], size: tuple[int, int]
    ) -> np.ndarray:
        downsample = self.level_downsamples[level]
        origin = (round(corner[0] * downsample), round(corner[1] * downsample))
        try:
            region = self._slide.read_region(origin, level, size)
        except openslide.OpenSlideError as error:
            raise SlideError(
                f"{self.path}: cannot read region at {origin}, level {level} ({error})"
            ) from error
        if region.getchannel("A").getextrema()[0] == 255:  # fully opaque: one conversion in C
            return np.asarray(region.convert("RGB"))
        return rgba_to_rgb(np.asarray(region))

    def _tiff_reader(self, level: int) -> TiffLevelReader | None:
        """The direct tile decoder for a level, if it reproduces OpenSlide exactly (cached)."""
        if level not in self._tiff_readers:
            size = self.level_dimensions[level]
            reader = TiffLevelReader.open(self.path, size)
            if reader is not None and not self._agrees(level, reader):
                reader.close()
                reader = None
            self._tiff_readers[level] = reader
        return self._tiff_readers[level]

    def _agrees(self, level: int, reader: TiffLevelReader) -> bool:
        """Whether ``reader`` gives OpenSlide's pixels in two regions across tile seams: the
        level's centre and the centre of its top-left quarter (in case one is blank glass)."""
        width, height = self.level_dimensions[level]
        w, h = min(width, 2 * reader.tile_w + 7), min(height, 2 * reader.tile_h + 5)
        centre = ((width - w) // 2, (height - h) // 2)
        quarter = (max(0, width // 4 - w // 2), max(0, height // 4 - h // 2))
        corners = {centre, quarter}
        try:
            return all(
                np.array_equal(
                    reader.read(*corner, w, h), self._read_openslide(level, corner, (w, h))
                )
                for corner in corners
            )
        except Exception:  # unreadable either way: leave the error to OpenSlide's path
            return False


def rgba_to_rgb(rgba: np.ndarray) -> np.ndarray:
    """RGB copy of an RGBA image with fully transparent pixels set to white."""
    rgb = np.ascontiguousarray(rgba[..., :3])
    rgb[rgba[..., 3] == 0] = 255
    return rgb


def resize_tile(tile: np.ndarray, tile_px: int) -> np.ndarray:
    """Resize a square RGB tile to ``tile_px`` (Lanczos); returns a new writable array."""
    if tile.shape[0] == tile_px and tile.shape[1] == tile_px:
        return np.array(tile)
    image = Image.fromarray(np.ascontiguousarray(tile))
    return np.asarray(image.resize((tile_px, tile_px), Image.Resampling.LANCZOS))


def _row_runs(corners: np.ndarray, extract_px: int) -> Iterator[np.ndarray]:
    """Split row-sorted corners into runs read together: same row, gaps under one tile."""
    start = 0
    for i in range(1, len(corners) + 1):
        end_of_run = (
            i == len(corners)
            or corners[i, 1] != corners[start, 1]
            or corners[i, 0] - corners[i - 1, 0] > 2 * extract_px
            or corners[i, 0] + extract_px - corners[start, 0] > _MAX_READ_WIDTH
        )
        if end_of_run:
            yield np.arange(start, i)
            start = i


def _open(path: Path) -> openslide.OpenSlide:
    if not path.exists():
        raise SlideError(f"{path}: slide file not found")
    try:
        return openslide.OpenSlide(str(path))
    except openslide.OpenSlideUnsupportedFormatError as error:
        raise SlideError(f"{path}: not a slide format OpenSlide can read ({error})") from error
    except openslide.OpenSlideError as error:
        raise SlideError(f"{path}: OpenSlide cannot open this slide ({error})") from error


def detect_mpp(slide: openslide.OpenSlide, path: Path) -> float:
    """Microns per level-0 pixel from ``openslide.mpp-x``, else the TIFF resolution tags."""
    value = slide.properties.get(openslide.PROPERTY_NAME_MPP_X)
    try:
        if value is not None and float(value) > 0:
            return float(value)
    except ValueError:
        pass
    mpp = _tiff_mpp(path)
    if mpp is None:
        raise MissingMPPError(
            f"{path}: the slide's metadata gives no microns per pixel (no openslide.mpp-x and "
            "no TIFF resolution in cm or inch); pass mpp=<µm per level-0 pixel> "
            "(--mpp on the command line)"
        )
    return mpp


def _tiff_mpp(path: Path) -> float | None:
    """Microns per pixel from the first TIFF page's XResolution/ResolutionUnit, if any."""
    try:
        with tifffile.TiffFile(path) as tif:
            tags = tif.pages.first.tags
            unit = tags.get("ResolutionUnit")
            resolution = tags.get("XResolution")
            if unit is None or resolution is None or int(unit.value) not in _TIFF_UNIT_MICRONS:
                return None
            numerator, denominator = resolution.value
            if numerator <= 0 or denominator <= 0:
                return None
            return _TIFF_UNIT_MICRONS[int(unit.value)] * denominator / numerator
    except (tifffile.TiffFileError, OSError, ValueError, TypeError):
        return None


def _collect_rois(rois: str | Path | Sequence[str | Path | ROI] | None) -> list[ROI]:
    if rois is None:
        return []
    if isinstance(rois, str | Path):
        rois = [rois]
    collected: list[ROI] = []
    for item in rois:
        collected.extend([item] if isinstance(item, ROI) else load_rois(item))
    return collected
