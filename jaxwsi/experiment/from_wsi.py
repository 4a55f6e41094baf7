"""Training straight from slides (``from_wsi=True``): no pixels are written, tiles are read from
the slides in the loader workers.

How, so that sharding, balance, clipping and exact resume are the TFRecord path's own:

1. Planning (once per slide, cached): the slide's grid goes through the same ROI, whitespace,
   grayspace and Otsu QC selection as `jaxwsi.slide.extract_tiles`, and the kept tiles are
   written, in the same seeded shuffled order, as a *tile-reference* TFRecord: one small record
   per tile holding ``slide``, ``loc_x``, ``loc_y`` and an empty ``image_raw`` (tens of bytes
   per tile), with its index.
2. A `WSIDataset` (a `jaxwsi.Dataset` over those references) hands them to the native
   interleaver unchanged (``decode=False``), so the sampling plan, weights, clips, shards and
   iterator state are exactly those of extracted TFRecords.
3. `ReadTiles`, a Grain map step that runs in the loader workers, replaces each reference by
   the tile's pixels, read from the slide at that location (`jaxwsi.slide.WSI.read_tiles`).
   Slide handles are opened lazily per worker process and never pickled.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from jaxwsi.dataset.dataset import Dataset
from jaxwsi.slide.extract import ExtractionSettings
from jaxwsi.slide.wsi import WSI, slide_name

REFERENCE_DIR = "wsi_tiles"  # project folder for tile references: wsi_tiles/{tile label}/
_ROUTING_KEYS = ("slide", "loc_x", "loc_y")


def _open(path: Path, settings: ExtractionSettings) -> WSI:
    return WSI(
        path,
        settings.tile_px,
        settings.tile_um,
        stride_div=settings.stride_div,
        mpp=settings.mpp,
        roi_method=settings.roi_method,
        use_edge_tiles=settings.use_edge_tiles,
    )


def plan_slide(path: Path, settings: ExtractionSettings) -> np.ndarray:
    """Level-0 centres (int64 [N, 2]) of the slide's kept tiles, in the order extraction
    writes them (sorted by grid index, then the seeded per-slide permutation)."""
    with _open(path, settings) as wsi:
        selection = wsi.select_tiles(
            whitespace_fraction=settings.whitespace_fraction,
            whitespace_threshold=settings.whitespace_threshold,
            grayspace_fraction=settings.grayspace_fraction,
            grayspace_threshold=settings.grayspace_threshold,
            qc=settings.qc,
            qc_fraction=settings.qc_fraction,
        )
        kept = wsi.locations[np.flatnonzero(selection.keep)]
    rng = np.random.default_rng([settings.seed, zlib.crc32(slide_name(path).encode())])
    return kept[rng.permutation(len(kept))]


def write_tile_references(
    slide_paths: Iterable[str | Path], outdir: str | Path, settings: ExtractionSettings
) -> Path:
    """Plan every slide and write ``outdir/{slide}.tfrecords`` of tile references (kept when
    already there for the same settings: the settings are recorded in ``settings.json``)."""
    import json

    from jaxwsi.atomic import write_text_atomic
    from jaxwsi.io import TFRecordWriter, build_index

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    recorded = outdir / "settings.json"
    wanted = json.dumps(asdict(settings), sort_keys=True, default=str)
    if recorded.is_file() and recorded.read_text() != wanted:
        for old in outdir.glob("*.tfrecords"):
            old.unlink()
    write_text_atomic(recorded, wanted)
    for path in map(Path, slide_paths):
        target = outdir / f"{slide_name(path)}.tfrecords"
        if target.is_file():
            continue
        locations = plan_slide(path, settings)
        with TFRecordWriter(target) as writer:
            for x, y in locations:
                writer.write(
                    {"image_raw": b"", "slide": slide_name(path), "loc_x": int(x), "loc_y": int(y)}
                )
        build_index(target, force=True)
    return outdir


class ReadTiles:
    """Grain map step: a batch of tile references → the same batch with decoded ``image``
    (uint8 [B, tile_px, tile_px, 3]) read from the slides; ``slide``/``loc_*`` are dropped
    unless ``keep`` names them. Picklable: slide handles open lazily in each process."""

    def __init__(
        self,
        slides: Mapping[str, str | Path],
        settings: ExtractionSettings,
        keep: Iterable[str] = (),
    ) -> None:
        self.slides = {name: str(path) for name, path in slides.items()}
        self.settings = settings
        self.keep = tuple(keep)
        self._open: dict[str, tuple[WSI, dict[tuple[int, int], int]]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_open": {}}

    def _slide(self, name: str) -> tuple[WSI, dict[tuple[int, int], int]]:
        if name not in self._open:
            if name not in self.slides:
                raise KeyError(f"no slide file for tile references of slide {name!r}")
            wsi = _open(Path(self.slides[name]), self.settings)
            grid = {(int(x), int(y)): i for i, (x, y) in enumerate(wsi.locations)}
            self._open[name] = (wsi, grid)
        return self._open[name]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        px = self.settings.tile_px
        images = np.empty((len(batch["slide"]), px, px, 3), np.uint8)
        slides = np.asarray(batch["slide"])
        for name in np.unique(slides):
            rows = np.flatnonzero(slides == name)
            wsi, grid = self._slide(str(name))
            try:
                indices = [grid[int(batch["loc_x"][r]), int(batch["loc_y"][r])] for r in rows]
            except KeyError as error:
                raise KeyError(f"{wsi.path}: no grid tile centred at {error.args[0]}") from None
            row_of: dict[int, list[int]] = {}
            for r, i in zip(rows, indices, strict=True):
                row_of.setdefault(i, []).append(int(r))
            for index, tile in wsi.read_tiles(indices):
                images[row_of[index]] = tile
        out = {k: v for k, v in batch.items() if k not in (*_ROUTING_KEYS, "image")}
        out.update({k: batch[k] for k in self.keep})
        out["image"] = images
        return out

    def close(self) -> None:
        """Release the slide handles of this process."""
        for wsi, _ in self._open.values():
            wsi.close()
        self._open.clear()


class TileReadingIterator:
    """An `Interleaver` of tile references whose batches come out with pixels (`ReadTiles`):
    same iteration, length and ``get_state``/``set_state`` as the interleaver it wraps."""

    def __init__(self, interleaver: Any, read: ReadTiles) -> None:
        self._interleaver = interleaver
        self._read = read

    def __iter__(self) -> TileReadingIterator:
        iter(self._interleaver)
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        return self._read(next(self._interleaver))

    def __len__(self) -> int:
        return len(self._interleaver)

    def __getattr__(self, name: str) -> Any:  # num_records, shard, args, ...
        return getattr(self._interleaver, name)

    def get_state(self) -> dict[str, Any]:
        return self._interleaver.get_state()

    def set_state(self, state: Mapping[str, Any]) -> None:
        self._interleaver.set_state(state)


class WSIDataset(Dataset):
    """A `Dataset` whose TFRecords are tile references (see the module docstring): filters,
    labels, splits, balance and clips work unchanged, and its loaders yield pixels read from
    the slides. Build one with `wsi_dataset`."""

    slide_files: dict[str, str]
    tile_settings: ExtractionSettings

    def _reader(self, options: dict[str, Any]) -> tuple[ReadTiles, dict[str, Any]]:
        keep = [
            k
            for k in _ROUTING_KEYS
            if options.get(f"incl_{'slidenames' if k == 'slide' else 'loc'}")
        ]
        options = {**options, "decode": False, "incl_slidenames": True, "incl_loc": True}
        return ReadTiles(self.slide_files, self.tile_settings, keep), options

    def interleaver(self, labels: Any = None, *, use_float: Any = False, **options: Any) -> Any:
        read, options = self._reader(options)
        return TileReadingIterator(
            super().interleaver(labels, use_float=use_float, **options), read
        )

    def grain(self, labels: Any = None, *, use_float: Any = False, **options: Any) -> Any:
        read, options = self._reader(options)
        return super().grain(labels, use_float=use_float, **options).map(read)


def wsi_dataset(
    annotations: Any,
    slide_paths: Iterable[str | Path],
    reference_dir: str | Path,
    settings: ExtractionSettings,
    **dataset_options: Any,
) -> WSIDataset:
    """Plan the slides (cached in ``reference_dir``) and return their `WSIDataset`;
    ``dataset_options`` are `Dataset`'s (filters, min_tiles, splits, ...)."""
    paths = {slide_name(p): str(p) for p in slide_paths}
    folder = write_tile_references(paths.values(), reference_dir, settings)
    dataset = WSIDataset(
        annotations, folder, tile_px=settings.tile_px, tile_um=settings.tile_um, **dataset_options
    )
    dataset.slide_files = paths
    dataset.tile_settings = settings
    return dataset
