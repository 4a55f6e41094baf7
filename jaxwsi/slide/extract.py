"""``extract_tiles``: slides → one shuffled TFRecord of tiles per slide, in parallel, resumable.

Work is split into tasks run by `jaxwsi.slide.workers.WorkerPool`: worker processes that never
re-import the caller's ``__main__``, so `extract_tiles` works at the top level of a plain script,
under ``python -m``/``-c`` and in notebooks, and that die with their parent. Per slide, one task
plans (opens the slide, builds the grid, applies ROIs, filters and QC, draws the thumbnail), then
tasks of about ``_CHUNK_TILES`` tiles read and encode the kept tiles, so even one large slide keeps
every worker busy. The parent shuffles a slide's tiles (seeded) and writes
``{outdir}/{tile_px}px_{tile_um}um/{slide}.tfrecords`` with its ``.index.npz``, then a small
``report/{slide}.json``. That JSON is written last: a slide that has it (without error) is
finished and skipped on a re-run; any other slide is extracted again, after its hidden temporary
files from a killed run are removed. The folder's ``extraction_settings.json`` holds the settings
its tiles were made with; another run with other settings is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import pickle
import signal
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from jaxwsi.atomic import write_text_atomic
from jaxwsi.io import TFRecordWriter, build_index, index_path
from jaxwsi.messages import name_some, plural, unknown
from jaxwsi.slide.errors import SlideError
from jaxwsi.slide.report import REPORT_COLUMNS, write_report
from jaxwsi.slide.settings import (
    IMAGE_FORMATS,
    ExtractionSettings,
    check_folder_settings,
    setting_names,
)
from jaxwsi.slide.tasks import (
    SlideJob,
    SlidePlan,
    close_cached_slide,
    encode_tile,
    plan_slide,
    read_chunk,
)
from jaxwsi.slide.workers import DEFAULT_STALL_TIMEOUT, Done, WorkerPool
from jaxwsi.slide.wsi import slide_name

__all__ = [
    "IMAGE_FORMATS",
    "SLIDE_EXTENSIONS",
    "ExtractionError",
    "ExtractionSettings",
    "encode_tile",
    "extract_tiles",
    "select_shard",
]

SLIDE_EXTENSIONS = (
    ".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif",
)  # fmt: skip
_CHUNK_TILES = 64  # tiles per read task
_REPORT_DIR = "report"
_RUN_OPTIONS = ("roi_dir", "num_workers", "shard", "overwrite", "progress", "stall_timeout")
_clock: Callable[[], float] = time.monotonic  # the stall clock (tests pass a controlled one)


class ExtractionError(SlideError):
    """Every slide of an extraction failed (or it was stopped): nothing usable was written."""


@dataclass
class _SlideState:
    job: SlideJob
    started: float
    plan: SlidePlan | None = None
    tasks: int = 0  # tasks of this slide not yet done
    tiles: list[list[tuple[int, bytes]]] = field(default_factory=list)
    error: str | None = None


def extract_tiles(
    slides: str | Path | Sequence[str | Path],
    outdir: str | Path,
    tile_px: int | None = None,
    tile_um: int | float | str | None = None,
    *,
    settings: ExtractionSettings | None = None,
    roi_dir: str | Path | None = None,
    num_workers: int | None = None,
    shard: tuple[int, int] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    stall_timeout: float | None = DEFAULT_STALL_TIMEOUT,
    **options: Any,
) -> pd.DataFrame:
    """Extract tiles from ``slides`` (paths, or a folder of slides) into TFRecords; returns the
    report rows (``REPORT_COLUMNS``) of this run's slides.

    The tiles are described by ``settings`` (an `ExtractionSettings`), or by ``tile_px``,
    ``tile_um`` and `ExtractionSettings` fields as keywords (``qc="otsu"``, ...; given with
    ``settings`` they override its fields). ROIs are ``{roi_dir}/{slide}.csv`` or ``.geojson``.
    ``num_workers`` processes (default: all CPUs; 0 runs in this process) do the work; they work
    from any main program (no ``if __name__ == "__main__":`` needed) and die with this process.
    ``shard=(i, n)`` keeps every n-th slide from the i-th (slides sorted by name), so n jobs can
    share a slide list. Finished slides are skipped unless ``overwrite``. A folder holds tiles of
    one set of settings: asking for others raises `SettingsMismatchError` naming them. An
    unreadable slide is reported with its error and the others go on; when every slide asked for
    has failed, `ExtractionError` is raised (after the report is written). Writes
    ``extraction_report.csv``/``.html`` describing every slide extracted into the folder. A
    slide's encoded tiles are held in memory until its TFRecord is written. A ``qc`` callable
    must be importable by the workers (a function in a module, not in the main script). A worker
    task that runs longer than ``stall_timeout`` seconds (a worker hung in OpenSlide or a QC
    callable) is killed and its slide reported as failed (``None`` waits forever; with
    ``num_workers=0`` nothing can be interrupted). SIGTERM stops the workers, keeps the finished
    slides and removes the unfinished ones' temporary files.
    """
    settings = _settings(settings, tile_px, tile_um, options)
    if roi_dir is not None and not Path(roi_dir).is_dir():
        raise FileNotFoundError(f"roi_dir: folder not found: {roi_dir}")
    paths = select_shard(_slide_paths(slides), shard)
    if num_workers is None:
        num_workers = os.cpu_count() or 1  # chunks spread even one slide over all of them
    if num_workers > 0:
        _check_sendable(settings)
    out = Path(outdir) / settings.label
    (out / _REPORT_DIR).mkdir(parents=True, exist_ok=True)
    check_folder_settings(out, settings)
    jobs = [_job(path, out, settings, roi_dir) for path in paths]
    todo = [job for job in jobs if overwrite or not _finished(out, job.name)]
    for job in jobs:  # this run's slides only: other shards' files are never touched
        _remove_leftovers(out, job.name)
    if todo:
        with _stop_on_sigterm():
            _run(todo, out, num_workers, progress, stall_timeout)
    records = _load_records(out)
    write_report(records, out)
    names = {job.name for job in jobs}
    rows = [r for r in records if r["slide"] in names]
    report = pd.DataFrame(rows, columns=list(REPORT_COLUMNS))
    report = report.sort_values("slide", ignore_index=True)
    if todo:
        _raise_if_all_failed(report, out)
    return report


def _settings(
    settings: ExtractionSettings | None,
    tile_px: int | None,
    tile_um: int | float | str | None,
    options: dict[str, Any],
) -> ExtractionSettings:
    """The run's settings: ``settings`` with the keywords given applied, or built from them."""
    names = setting_names()
    for name in options:
        if name not in names or name in ("tile_px", "tile_um"):
            raise TypeError(unknown("extract_tiles option", name, [*_RUN_OPTIONS, *names]))
    given = dict(options)
    if tile_px is not None:
        given["tile_px"] = tile_px
    if tile_um is not None:
        given["tile_um"] = tile_um
    if settings is not None:
        return dataclasses.replace(settings, **given)
    if tile_px is None or tile_um is None:
        raise TypeError("extract_tiles needs tile_px and tile_um, or settings=ExtractionSettings")
    return ExtractionSettings(**given)


def _check_sendable(settings: ExtractionSettings) -> None:
    """A QC callable must reach the workers, which do not import the main script."""
    qc = settings.qc
    if callable(qc) and getattr(qc, "__module__", None) == "__main__":
        raise ValueError(
            f"qc callable {getattr(qc, '__name__', qc)!r} is defined in the main script, which "
            "worker processes do not import: move it into a module and import it from there, "
            "or pass num_workers=0"
        )
    try:
        pickle.dumps(settings)
    except Exception as error:
        raise ValueError(
            f"qc callable {qc!r} cannot be sent to worker processes ({error}): use a function "
            "defined at the top level of a module, or pass num_workers=0"
        ) from None


def _raise_if_all_failed(report: pd.DataFrame, out: Path) -> None:
    """No slide asked for (extracted now or finished earlier) succeeded: raise, naming them."""
    errors = report["error"].fillna("").astype(str)
    if len(report) == 0 or (errors == "").any():
        return
    details = name_some(f"{s}: {e}" for s, e in zip(report["slide"], errors, strict=True))
    raise ExtractionError(
        f"every slide failed ({plural(len(report), 'slide')}; see "
        f"{out / 'extraction_report.csv'}): {details}"
    )


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
) -> SlideJob:
    name = slide_name(path)
    rois: tuple[Path, ...] = ()
    if roi_dir is not None:
        candidates = (Path(roi_dir) / f"{name}{suffix}" for suffix in (".csv", ".geojson", ".json"))
        rois = tuple(p for p in candidates if p.is_file())
    return SlideJob(path, name, rois, settings, out / _REPORT_DIR / f"{name}.png")


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


def _remove_leftovers(out: Path, name: str) -> None:
    """Remove the hidden temporary files a killed run left for slide ``name`` (its TFRecord,
    index, report JSON and thumbnail)."""
    stem = glob.escape(name)
    patterns = [
        (out, f".{stem}.tfrecords.tmp-*"),
        (out, f".{stem}.index.npz.tmp-*"),
        (out / _REPORT_DIR, f".{stem}.json.*tmp"),
        (out / _REPORT_DIR, f".{stem}.png.*tmp"),
    ]
    for folder, pattern in patterns:
        for leftover in folder.glob(pattern):
            leftover.unlink(missing_ok=True)


class _Terminated(BaseException):
    """Raised in the main thread by SIGTERM while `extract_tiles` runs."""


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """While extracting, SIGTERM (a SLURM time-out) stops cleanly: the ``finally`` blocks stop
    the workers and remove temporary files, then the signal is handled as it would have been."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous == signal.SIG_IGN:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, previous)
        signal.raise_signal(signal.SIGTERM)  # default: the process ends by SIGTERM, as asked
        raise ExtractionError(
            "extraction stopped by SIGTERM; finished slides are kept, a re-run does the others"
        ) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


class _InlineRunner:
    """Runs each task at submit time in this process (``num_workers=0``: debugging, tests)."""

    def __init__(self) -> None:
        self._done: list[Done] = []

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self._done.append(Done(key, fn(*args)))
        except Exception as error:
            self._done.append(Done(key, error=f"{type(error).__name__}: {error}", kind="error"))

    def wait(self) -> list[Done]:
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        close_cached_slide()


def _run(
    jobs: list[SlideJob],
    out: Path,
    num_workers: int,
    progress: bool,
    stall_timeout: float | None,
) -> None:
    """Plan, read and write every slide, keeping at most num_workers + 1 slides in flight."""
    queue = deque(jobs)
    states: dict[str, _SlideState] = {}
    bar = tqdm(total=len(jobs), unit="slide", disable=not progress, desc="extract")
    total_tiles = 0
    runner: _InlineRunner | WorkerPool = _InlineRunner()
    try:
        if num_workers > 0:
            runner = WorkerPool(num_workers, stall_timeout=stall_timeout, clock=_clock)
        while queue or states:
            while queue and len(states) < num_workers + 1:
                job = queue.popleft()
                states[job.name] = _SlideState(job, time.perf_counter(), tasks=1)
                runner.submit((job.name, "plan"), plan_slide, job)
            for done in runner.wait():
                name, kind = cast(tuple[str, str], done.key)
                state = states[name]
                state.tasks -= 1
                if done.error is not None:
                    state.error = state.error or _slide_error(done, stall_timeout)
                elif kind == "plan":
                    state.plan = done.value
                    for chunk in _chunks(done.value):
                        state.tasks += 1
                        runner.submit((name, "read"), read_chunk, state.job, chunk)
                else:
                    state.tiles.append(done.value)
                if state.tasks == 0:
                    total_tiles += _finish(states.pop(name), out)
                    bar.update(1)
                    bar.set_postfix(tiles=total_tiles)
    finally:
        bar.close()
        runner.close()
        for name in states:  # slides in flight when stopped: nothing of them may remain
            _remove_leftovers(out, name)


def _slide_error(done: Done, stall_timeout: float | None) -> str:
    if done.kind == "died":
        return (
            f"SlideError: a worker process died while working on this slide ({done.error}; "
            "a crash in OpenSlide or a QC callable?)"
        )
    if done.kind == "stalled":
        return (
            f"SlideError: a worker task on this slide ran over stall_timeout={stall_timeout:g} s "
            "(hung in OpenSlide or a QC callable?); the worker was killed"
        )
    return str(done.error)


def _chunks(plan: SlidePlan) -> list[np.ndarray]:
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


def _finish(state: _SlideState, out: Path) -> int:
    """Write a slide's shuffled TFRecord, index and report JSON; returns the tiles written."""
    job, plan = state.job, state.plan
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
        **job.settings.record(),
        "mpp": plan.mpp if plan else job.settings.mpp,  # the µm per pixel used
        "level": plan.level if plan else None,
        "num_rois": plan.num_rois if plan else None,
        "roi_files": ";".join(map(str, job.rois)) or None,
        "seconds": round(time.perf_counter() - state.started, 3),
        "error": state.error,
        "path": str(job.path),
        "thumbnail": f"{_REPORT_DIR}/{job.thumbnail.name}" if job.thumbnail.is_file() else None,
    }
    write_text_atomic(out / _REPORT_DIR / f"{job.name}.json", json.dumps(record, indent=1))
    return int(record["num_tiles"])


def _write_tfrecord(
    job: SlideJob, plan: SlidePlan, chunks: list[list[tuple[int, bytes]]], out: Path
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
