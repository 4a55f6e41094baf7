"""``extract_tiles``: slides → one shuffled TFRecord of tiles per slide, in parallel, resumable.

Work is split into tasks run by a pool of *spawned* processes (never forked: JAX may already have
started threads). Per slide, one task plans (opens the slide, builds the grid, applies ROIs,
filters and QC, draws the thumbnail), then tasks of about ``_CHUNK_TILES`` tiles read and encode
the kept tiles, so even one large slide keeps every worker busy. The parent shuffles a slide's
tiles (seeded) and writes ``{outdir}/{tile_px}px_{tile_um}um/{slide}.tfrecords`` with its
``.index.npz``, then a small ``report/{slide}.json``. That JSON is written last: a slide that has
it (without error) is finished and skipped on a re-run; any other slide is extracted again.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from jaxwsi.io import TFRecordWriter, build_index, index_path
from jaxwsi.slide.filters import check_filter_rule
from jaxwsi.slide.grid import check_level_rule, parse_magnification, tile_size_label
from jaxwsi.slide.qc import QCCallable, check_qc
from jaxwsi.slide.report import (
    REPORT_COLUMNS,
    draw_thumbnail,
    save_image,
    temporary_path,
    write_report,
)
from jaxwsi.slide.roi import ROI_METHODS
from jaxwsi.slide.wsi import WSI, slide_name

SLIDE_EXTENSIONS = (
    ".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif",
)  # fmt: skip
IMAGE_FORMATS = ("jpg", "png")
_CHUNK_TILES = 64  # tiles per read task
_REPORT_DIR = "report"


@dataclass(frozen=True)
class ExtractionSettings:
    """Everything that decides which tiles a slide gives and how they are encoded (picklable)."""

    tile_px: int
    tile_um: int | float | str
    stride_div: int = 1
    mpp: float | None = None
    roi_method: str = "auto"
    use_edge_tiles: bool = False
    whitespace_fraction: float = 1.0
    whitespace_threshold: float = 230
    grayspace_fraction: float = 0.6
    grayspace_threshold: float = 0.05
    qc: str | QCCallable | None = None
    qc_fraction: float = 0.6
    img_format: str = "jpg"
    jpeg_quality: int = 95
    seed: int = 0
    level_rule: str = "direct"  # pyramid level: "direct" or "slideflow" (jaxwsi.slide.grid)
    filter_rule: str = "thumbnail"  # filter pixels: "thumbnail" or "slideflow" (slide.filters)

    def __post_init__(self) -> None:
        if self.tile_px < 1 or self.stride_div < 1:
            raise ValueError(
                f"tile_px and stride_div must be positive, got {self.tile_px}, {self.stride_div}"
            )
        parse_magnification(self.tile_um)
        check_qc(self.qc)
        check_level_rule(self.level_rule)
        check_filter_rule(self.filter_rule)
        if self.roi_method not in ROI_METHODS:
            raise ValueError(f"roi_method must be one of {ROI_METHODS}, got {self.roi_method!r}")
        if self.img_format not in IMAGE_FORMATS:
            raise ValueError(f"img_format must be one of {IMAGE_FORMATS}, got {self.img_format!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")

    @property
    def label(self) -> str:
        return tile_size_label(self.tile_px, self.tile_um)


@dataclass(frozen=True)
class _SlideJob:
    """One slide to extract: what worker processes need to open it themselves."""

    path: Path
    name: str
    rois: tuple[Path, ...]
    settings: ExtractionSettings
    thumbnail: Path

    def open(self) -> WSI:
        s = self.settings
        return WSI(
            self.path,
            s.tile_px,
            s.tile_um,
            stride_div=s.stride_div,
            mpp=s.mpp,
            rois=list(self.rois),
            roi_method=s.roi_method,
            use_edge_tiles=s.use_edge_tiles,
            level_rule=s.level_rule,
        )


@dataclass
class _SlidePlan:
    """What planning found: the tiles to read (grid indices) and facts for the report."""

    indices: np.ndarray
    locations: np.ndarray  # level-0 centres of all grid tiles
    level_rows: np.ndarray  # grid row (level y) of all grid tiles
    mpp: float
    level: int
    num_rois: int


@dataclass
class _SlideState:
    job: _SlideJob
    started: float
    plan: _SlidePlan | None = None
    chunks_left: int = 0
    tiles: list[list[tuple[int, bytes]]] = field(default_factory=list)
    error: str | None = None


def extract_tiles(
    slides: str | Path | Sequence[str | Path],
    outdir: str | Path,
    tile_px: int,
    tile_um: int | float | str,
    *,
    stride_div: int = 1,
    mpp: float | None = None,
    roi_dir: str | Path | None = None,
    roi_method: str = "auto",
    use_edge_tiles: bool = False,
    whitespace_fraction: float = 1.0,
    whitespace_threshold: float = 230,
    grayspace_fraction: float = 0.6,
    grayspace_threshold: float = 0.05,
    qc: str | QCCallable | None = None,
    qc_fraction: float = 0.6,
    img_format: str = "jpg",
    jpeg_quality: int = 95,
    seed: int = 0,
    level_rule: str = "direct",
    filter_rule: str = "thumbnail",
    num_workers: int | None = None,
    shard: tuple[int, int] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    stall_timeout: float | None = 600.0,
) -> pd.DataFrame:
    """Extract tiles from ``slides`` (paths, or a folder of slides) into TFRecords; returns the
    report rows (``REPORT_COLUMNS``) of this run's slides.

    Tiles are ``tile_px`` pixels covering ``tile_um`` µm (or a ``"10x"`` magnification); see
    ``WSI`` for ROIs (``{roi_dir}/{slide}.csv`` or ``.geojson``), filters and QC, whose
    arguments are passed through. ``num_workers`` processes (default: all CPUs; 0 runs in this
    process) do the work. ``shard=(i, n)`` keeps every n-th slide from the i-th (slides sorted by
    name), so n jobs can share a slide list. Finished slides are skipped unless ``overwrite``
    (even when other settings are asked for: the report lists each slide's settings). An
    unreadable slide is reported with its error and the others go on. Writes
    ``extraction_report.csv``/``.html`` describing every slide extracted into the folder.
    A slide's encoded tiles are held in memory until its TFRecord is written. A ``qc`` callable
    must be picklable (a module-level function) to reach the workers. When no worker task
    finishes for ``stall_timeout`` seconds (a worker hung in OpenSlide or a QC callable), the
    workers are killed, the slides in flight are reported as failed and the others go on
    (``None`` waits forever; with ``num_workers=0`` nothing can be interrupted).
    """
    settings = ExtractionSettings(
        tile_px=int(tile_px),
        tile_um=tile_um,
        stride_div=stride_div,
        mpp=mpp,
        roi_method=roi_method,
        use_edge_tiles=use_edge_tiles,
        whitespace_fraction=whitespace_fraction,
        whitespace_threshold=whitespace_threshold,
        grayspace_fraction=grayspace_fraction,
        grayspace_threshold=grayspace_threshold,
        qc=qc,
        qc_fraction=qc_fraction,
        img_format=img_format,
        jpeg_quality=jpeg_quality,
        seed=seed,
        level_rule=level_rule,
        filter_rule=filter_rule,
    )
    paths = select_shard(_slide_paths(slides), shard)
    out = Path(outdir) / settings.label
    (out / _REPORT_DIR).mkdir(parents=True, exist_ok=True)
    jobs = [_job(path, out, settings, roi_dir) for path in paths]
    todo = [job for job in jobs if overwrite or not _finished(out, job.name)]
    if num_workers is None:
        num_workers = os.cpu_count() or 1  # chunks spread even one slide over all of them
    if todo:
        _run(todo, out, num_workers, progress, stall_timeout)
    records = _load_records(out)
    write_report(records, out)
    names = {job.name for job in jobs}
    rows = [r for r in records if r["slide"] in names]
    return pd.DataFrame(rows, columns=list(REPORT_COLUMNS)).sort_values("slide", ignore_index=True)


def select_shard(paths: Sequence[Path], shard: tuple[int, int] | None) -> list[Path]:
    """Slides sorted by name, then every n-th from the i-th for ``shard=(i, n)``."""
    ordered = sorted(paths, key=lambda p: (slide_name(p), str(p)))
    if shard is None:
        return ordered
    index, count = shard
    if not (isinstance(index, int) and isinstance(count, int) and 0 <= index < count):
        raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard}")
    return ordered[index::count]


def _slide_paths(slides: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(slides, str | Path) and Path(slides).is_dir():
        found = sorted(p for p in Path(slides).iterdir() if p.suffix.lower() in SLIDE_EXTENSIONS)
        if not found:
            raise ValueError(f"{slides}: no slides ({', '.join(SLIDE_EXTENSIONS)}) in this folder")
        return found
    paths = [Path(slides)] if isinstance(slides, str | Path) else [Path(s) for s in slides]
    seen: dict[str, Path] = {}
    for path in paths:
        name = slide_name(path)
        if name in seen and seen[name] != path:
            raise ValueError(f"two slides share the name {name!r}: {seen[name]} and {path}")
        seen[name] = path
    return list(seen.values())


def _job(
    path: Path, out: Path, settings: ExtractionSettings, roi_dir: str | Path | None
) -> _SlideJob:
    name = slide_name(path)
    rois: tuple[Path, ...] = ()
    if roi_dir is not None:
        candidates = (Path(roi_dir) / f"{name}{suffix}" for suffix in (".csv", ".geojson", ".json"))
        rois = tuple(p for p in candidates if p.is_file())
    return _SlideJob(path, name, rois, settings, out / _REPORT_DIR / f"{name}.png")


def _finished(out: Path, name: str) -> bool:
    sidecar = out / _REPORT_DIR / f"{name}.json"
    if not (sidecar.is_file() and (out / f"{name}.tfrecords").is_file()):
        return False
    if not index_path(out / f"{name}.tfrecords").is_file():
        return False
    try:
        return not json.loads(sidecar.read_text())["error"]
    except (ValueError, KeyError):
        return False


def _run(
    jobs: list[_SlideJob],
    out: Path,
    num_workers: int,
    progress: bool,
    stall_timeout: float | None,
) -> None:
    """Plan, read and write every slide, keeping at most num_workers + 1 slides in flight."""
    queue = list(reversed(jobs))
    states: dict[str, _SlideState] = {}
    futures: dict[Future, tuple[str, str]] = {}  # future → (slide, "plan" | "read")
    executor = _executor(num_workers)
    pool_futures: set[Future] = set()  # futures of the current pool
    bar = tqdm(total=len(jobs), unit="slide", disable=not progress, desc="extract")
    total_tiles = 0

    def finish(name: str) -> None:
        nonlocal total_tiles
        total_tiles += _finish(states.pop(name), out)
        bar.update(1)
        bar.set_postfix(tiles=total_tiles)

    try:
        while queue or futures:
            while queue and len(states) < num_workers + 1:
                job = queue.pop()
                states[job.name] = _SlideState(job, time.perf_counter())
                future = executor.submit(_plan_slide, job)
                futures[future] = (job.name, "plan")
                pool_futures.add(future)
            done, _ = wait(list(futures), timeout=stall_timeout, return_when=FIRST_COMPLETED)
            if not done:  # no task finished in stall_timeout: a worker is stuck
                for state in states.values():  # every slide in flight has a pending task
                    state.error = (
                        f"SlideError: no worker task finished for {stall_timeout:g} s "
                        "(a worker hung in OpenSlide or a QC callable?); its workers were killed"
                    )
                futures.clear()
                _kill(executor)
                executor = _executor(num_workers)
                pool_futures = set()
                for name in list(states):
                    finish(name)
                continue
            pool_broken = False
            for future in done:
                name, kind = futures.pop(future)
                of_current_pool = future in pool_futures
                pool_futures.discard(future)
                state = states[name]
                try:
                    result = future.result()
                except BrokenProcessPool:
                    pool_broken |= of_current_pool
                    state.error = (
                        "SlideError: a worker process died while this slide was in flight "
                        "(a crash in OpenSlide or a QC callable?)"
                    )
                except Exception as error:  # reported per slide; the others go on
                    state.error = f"{type(error).__name__}: {error}"
                else:
                    if kind == "plan":
                        state.plan = result
                        chunks = _chunks(result)
                        state.chunks_left = len(chunks)
                        for chunk in chunks:
                            task = executor.submit(_read_chunk, state.job, chunk)
                            futures[task] = (name, "read")
                            pool_futures.add(task)
                    else:
                        state.tiles.append(result)
                        state.chunks_left -= 1
                if state.error is not None or state.chunks_left == 0:
                    if any(n == name for n, _ in futures.values()):
                        continue  # wait for this slide's remaining tasks to drain
                    finish(name)
            if pool_broken:  # all its tasks fail with it; go on with a fresh pool
                executor.shutdown(wait=False, cancel_futures=True)
                executor = _executor(num_workers)
                pool_futures = set()
    finally:
        bar.close()
        executor.shutdown(wait=True, cancel_futures=True)
        _close_cached_slide()  # opened in this process when num_workers=0


def _kill(executor: Executor) -> None:
    """Stops a process pool whose workers may be stuck: terminate them, then shut it down.
    (``ProcessPoolExecutor`` has no public way to kill its workers before Python 3.14.)"""
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        process.terminate()
    executor.shutdown(wait=False, cancel_futures=True)


def _executor(num_workers: int) -> Executor:
    if num_workers <= 0:
        return _InlineExecutor()
    pool = ProcessPoolExecutor(num_workers, mp_context=multiprocessing.get_context("spawn"))
    for _ in range(num_workers):  # start every worker now, while the first slide is planned
        pool.submit(os.getpid)
    return pool


class _InlineExecutor(Executor):
    """Runs each task at submit time in this process (``num_workers=0``: debugging, tests)."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as error:
            future.set_exception(error)
        return future


def _chunks(plan: _SlidePlan) -> list[np.ndarray]:
    """Kept tile indices split at grid-row boundaries into groups of about _CHUNK_TILES."""
    if len(plan.indices) == 0:
        return []
    rows = plan.level_rows[plan.indices]
    order = np.argsort(rows, kind="stable")
    indices, rows = plan.indices[order], rows[order]
    row_starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    chunks, start = [], 0
    for row_start in [*row_starts[1:], len(indices)]:
        if row_start - start >= _CHUNK_TILES or row_start == len(indices):
            chunks.append(indices[start:row_start])
            start = row_start
    return chunks


def _plan_slide(job: _SlideJob) -> _SlidePlan:
    """Worker task: grid, ROIs, filters and QC for one slide; saves its report thumbnail."""
    s = job.settings
    with job.open() as wsi:
        selection = wsi.select_tiles(
            whitespace_fraction=s.whitespace_fraction,
            whitespace_threshold=s.whitespace_threshold,
            grayspace_fraction=s.grayspace_fraction,
            grayspace_threshold=s.grayspace_threshold,
            qc=s.qc,
            qc_fraction=s.qc_fraction,
            filter_rule=s.filter_rule,
        )
        kept = np.flatnonzero(selection.keep)
        image, downsample = wsi.thumbnail()
        thumbnail = draw_thumbnail(
            image,
            downsample,
            corners=wsi.corners[kept],
            footprint=wsi.geometry.full_extract_px,
            qc_mask=selection.qc_mask,
            rois=[roi.geometry for roi in wsi.rois],
        )
        save_image(thumbnail, job.thumbnail)
        return _SlidePlan(
            indices=kept,
            locations=wsi.locations,
            level_rows=wsi.level_corners[:, 1],
            mpp=wsi.mpp,
            level=wsi.geometry.level,
            num_rois=len(wsi.rois),
        )


_open_slide: tuple[_SlideJob, WSI] | None = None  # per worker process: the slide last read


def _close_cached_slide() -> None:
    global _open_slide
    if _open_slide is not None:
        _open_slide[1].close()
        _open_slide = None


def _read_chunk(job: _SlideJob, indices: np.ndarray) -> list[tuple[int, bytes]]:
    """Worker task: read and encode some tiles of one slide → [(grid index, image bytes)]."""
    global _open_slide
    if _open_slide is None or _open_slide[0] != job:
        _close_cached_slide()
        _open_slide = (job, job.open())
    wsi = _open_slide[1]
    s = job.settings
    return [(i, encode_tile(t, s.img_format, s.jpeg_quality)) for i, t in wsi.read_tiles(indices)]


def encode_tile(tile: np.ndarray, img_format: str = "jpg", jpeg_quality: int = 95) -> bytes:
    """Encode an RGB uint8 tile as JPEG (``quality``) or lossless PNG."""
    buffer = io.BytesIO()
    if img_format == "png":
        Image.fromarray(tile).save(buffer, format="PNG")
    else:
        Image.fromarray(tile).save(buffer, format="JPEG", quality=jpeg_quality)
    return buffer.getvalue()


def _finish(state: _SlideState, out: Path) -> int:
    """Write a slide's shuffled TFRecord, index and report JSON; returns the tiles written."""
    job, plan, s = state.job, state.plan, state.job.settings
    num_tiles = 0
    if state.error is None and plan is not None:
        try:
            num_tiles = _write_tfrecord(job, plan, state.tiles, out)
        except Exception as error:
            state.error = f"{type(error).__name__}: {error}"
    if state.error is not None:  # no TFRecord from an earlier run may outlive a failed slide
        tfrecord = out / f"{job.name}.tfrecords"
        tfrecord.unlink(missing_ok=True)
        index_path(tfrecord).unlink(missing_ok=True)
    record = {
        "slide": job.name,
        "num_tiles": num_tiles if state.error is None else 0,
        "tile_px": s.tile_px,
        "tile_um": s.tile_um,
        "mpp": plan.mpp if plan else None,
        "level": plan.level if plan else None,
        "qc": s.qc
        if s.qc is None or isinstance(s.qc, str)
        else getattr(s.qc, "__name__", "custom"),
        "stride_div": s.stride_div,
        "whitespace_fraction": s.whitespace_fraction,
        "whitespace_threshold": s.whitespace_threshold,
        "grayspace_fraction": s.grayspace_fraction,
        "grayspace_threshold": s.grayspace_threshold,
        "roi_method": s.roi_method,
        "num_rois": plan.num_rois if plan else None,
        "img_format": s.img_format,
        "seconds": round(time.perf_counter() - state.started, 3),
        "error": state.error,
        "path": str(job.path),
        "thumbnail": f"{_REPORT_DIR}/{job.thumbnail.name}" if job.thumbnail.is_file() else None,
    }
    sidecar = out / _REPORT_DIR / f"{job.name}.json"
    tmp = temporary_path(sidecar)
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, sidecar)
    return record["num_tiles"]


def _write_tfrecord(
    job: _SlideJob, plan: _SlidePlan, chunks: list[list[tuple[int, bytes]]], out: Path
) -> int:
    """Shuffle (seeded by seed and slide name) and write tiles, then build the index."""
    tiles = sorted((item for chunk in chunks for item in chunk), key=lambda item: item[0])
    rng = np.random.default_rng([job.settings.seed, zlib.crc32(job.name.encode())])
    path = out / f"{job.name}.tfrecords"
    with TFRecordWriter(path) as writer:
        for k in rng.permutation(len(tiles)):
            index, image = tiles[k]
            x, y = plan.locations[index]
            writer.write({"image_raw": image, "slide": job.name, "loc_x": int(x), "loc_y": int(y)})
    build_index(path, force=True)
    return len(tiles)


def _load_records(out: Path) -> list[dict]:
    """Every slide's report JSON in the folder (all shards and earlier runs)."""
    records = []
    for sidecar in sorted((out / _REPORT_DIR).glob("*.json")):
        try:
            records.append(json.loads(sidecar.read_text()))
        except ValueError:
            continue  # a file that is not ours
    return records
