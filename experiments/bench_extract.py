"""Benchmark: tile extraction speed of `jaxwsi.slide.extract_tiles` against naive OpenSlide loops.

    .venv/bin/python experiments/bench_extract.py [--size 20480] [--workdir /tmp/jaxwsi_bench]

On one synthetic slide (``--size``² px at 0.25 µm/px, ~50% tissue, made once and cached in
``--workdir``), tiles of 256 px / 64 µm (level 0, no resize) and 299 px / 302 µm (the 4x level,
resized) are extracted:

* anchor ``naive, all tiles``: one ``read_region`` per grid tile, grayspace filter on the tile's
  pixels, resize and JPEG-encode the kept ones (what a per-tile extractor does);
* anchor ``naive, kept tiles``: one ``read_region`` per *kept* tile only, resize and encode (the
  same reads as jaxwsi, one call per tile);
* ``jaxwsi`` in-process, with 1 worker process and with all CPUs (end to end: plan, read in row
  batches, encode, shuffle, write TFRecord and index, thumbnail and report; spawned workers pay
  their start-up, which includes importing ``jaxwsi``), and in-process with its direct TIFF tile
  decoding turned off (every read through OpenSlide);
* the read-and-encode stage alone (the kept tiles in jaxwsi's chunks, the slide already planned)
  on 2 workers of each kind: jaxwsi's ``WorkerPool`` (``python -m jaxwsi.slide._worker``
  processes), ``ProcessPoolExecutor`` with spawn (what extract_tiles used before: it re-imports
  ``__main__``) and a ``ThreadPoolExecutor`` (one slide handle per thread): does the GIL allow
  threads instead of processes?
* ceiling: JPEG encoding alone, the part no reading strategy avoids, × CPUs.

Tiles/s counts kept (written) tiles. All variants write JPEG q95 with Pillow.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import os
import platform
import resource
import shutil
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import openslide
from PIL import Image

from jaxwsi.slide import WSI, ExtractionSettings, extract_tiles
from jaxwsi.slide.extract import _chunks
from jaxwsi.slide.filters import gray_mask
from jaxwsi.slide.tasks import SlideJob, encode_tile, plan_slide, read_chunk
from jaxwsi.slide.tiff_tiles import TiffLevelReader
from jaxwsi.slide.workers import WorkerPool
from jaxwsi.slide.wsi import resize_tile, rgba_to_rgb
from jaxwsi.testing import synthetic_slide

MPP = 0.25


def encode(tile: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(tile).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def naive(
    slide_path: Path,
    corners: np.ndarray,
    level: int,
    extract_px: int,
    tile_px: int,
    filter_: bool,
) -> int:
    """One read_region per tile; returns the number of tiles encoded."""
    kept = 0
    with openslide.OpenSlide(slide_path) as slide:
        for x, y in corners:
            region = slide.read_region((int(x), int(y)), level, (extract_px, extract_px))
            tile = rgba_to_rgb(np.asarray(region))
            if filter_ and gray_mask(tile).mean() > 0.6:
                continue
            encode(resize_tile(tile, tile_px))
            kept += 1
    return kept


@contextlib.contextmanager
def openslide_reads_only():
    """Turn off jaxwsi's direct TIFF tile decoding in this process."""
    original = TiffLevelReader.open
    TiffLevelReader.open = classmethod(lambda cls, path, size: None)
    try:
        yield
    finally:
        TiffLevelReader.open = original


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (worker pools shut down)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measured(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds incl. worker processes, load average meanwhile)."""
    cpu = cpu_seconds()
    result, wall = timed(fn, *args, **kwargs)
    return result, wall, cpu_seconds() - cpu, os.getloadavg()[0]


_local = threading.local()


def read_chunk_threaded(job: SlideJob, indices: np.ndarray) -> list[tuple[int, bytes]]:
    """read_chunk with one open slide per thread (a WSI handle is not shared across threads)."""
    if getattr(_local, "wsi", None) is None:
        _local.wsi = job.open()
    s = job.settings
    tiles = _local.wsi.read_tiles(indices)
    return [(i, encode_tile(t, s.img_format, s.jpeg_quality)) for i, t in tiles]


def read_stage(kind: str, job: SlideJob, chunks: list[np.ndarray], workers: int) -> int:
    """Read and encode every chunk on ``workers`` of one kind; returns the tiles encoded."""
    if kind == "pool":
        with WorkerPool(workers) as pool:
            for i, chunk in enumerate(chunks):
                pool.submit(i, read_chunk, job, chunk)
            total = 0
            while pool.busy():
                for done in pool.wait():
                    if done.error is not None:
                        raise RuntimeError(done.error)
                    total += len(done.value)
            return total
    if kind == "spawn":
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as executor:
            return sum(map(len, executor.map(read_chunk, [job] * len(chunks), chunks)))
    with ThreadPoolExecutor(workers) as executor:
        return sum(map(len, executor.map(read_chunk_threaded, [job] * len(chunks), chunks)))


def pool_start_seconds() -> float:
    """Seconds until a fresh WorkerPool of 1 has run its first task."""
    start = time.perf_counter()
    with WorkerPool(1) as pool:
        pool.submit(0, os.getpid)
        while not pool.wait():
            pass
    return time.perf_counter() - start


CONFIGS = {  # name: (tile_px, tile_um)
    "256px_64um": (256, 64),  # level 0 (0.25 µm/px), no resize: the common 40x extraction
    "299px_302um": (299, 302),  # level 2 (1 µm/px), 302 px resized to 299
}


def bench(slide_path: Path, workdir: Path, tile_px: int, tile_um: int, cpus: int) -> None:
    """Print one markdown table: anchors, jaxwsi with 0, 1 and all workers, ceiling."""
    with WSI(slide_path, tile_px, tile_um) as wsi:
        g = wsi.geometry
        keep = wsi.select_tiles().keep
        all_corners, kept_corners = wsi.corners, wsi.corners[keep]
        sample = [t for _, t in wsi.read_tiles(np.flatnonzero(keep)[:200])]
    print(
        f"\n{tile_px} px / {tile_um} µm: level {g.level} (x{g.downsample:g}), {g.extract_px} px "
        f"read per tile; {len(all_corners)} grid tiles, {int(keep.sum())} kept"
    )
    rows = []
    n, *times = measured(naive, slide_path, all_corners, g.level, g.extract_px, tile_px, True)
    rows.append(("naive: read_region per grid tile, filter, encode (1 process)", n, *times))
    n, *times = measured(naive, slide_path, kept_corners, g.level, g.extract_px, tile_px, False)
    rows.append(("naive: read_region per kept tile, encode (1 process)", n, *times))
    with openslide_reads_only():
        out = workdir / "out_openslide"
        shutil.rmtree(out, ignore_errors=True)
        report, *times = measured(
            extract_tiles, [slide_path], out, tile_px, tile_um, num_workers=0, progress=False
        )
        name = "jaxwsi extract_tiles, in-process, OpenSlide reads (no direct TIFF decoding)"
        rows.append((name, report.num_tiles[0], *times))
    for workers in sorted({0, 1, cpus}):
        out = workdir / f"out_{workers}"
        shutil.rmtree(out, ignore_errors=True)
        report, *times = measured(
            extract_tiles, [slide_path], out, tile_px, tile_um, num_workers=workers,
            progress=False,
        )  # fmt: skip
        where = "in-process" if workers == 0 else f"{workers} worker process(es)"
        rows.append((f"jaxwsi extract_tiles, {where}, end to end", report.num_tiles[0], *times))
    job = SlideJob(slide_path, slide_path.stem, (), ExtractionSettings(tile_px, tile_um),
                   workdir / "plan.png")  # fmt: skip
    chunks = _chunks(plan_slide(job))
    for kind, name in (("pool", "jaxwsi WorkerPool (python -m jaxwsi.slide._worker)"),
                       ("spawn", "ProcessPoolExecutor, spawn (re-imports __main__)"),
                       ("threads", "ThreadPoolExecutor")):  # fmt: skip
        n, *times = measured(read_stage, kind, job, chunks, 2)
        rows.append((f"read + encode stage only, 2 × {name}", n, *times))
    _, s = timed(lambda: [encode(t) for t in sample])
    encode_rate = len(sample) / s

    base = rows[0][1] / rows[0][2]
    print("\n| variant | tiles | wall s | CPU s | load | tiles/s | vs naive per grid tile |")
    print("|---|---|---|---|---|---|---|")
    for name, tiles, wall, cpu, load in rows:
        rate = tiles / wall
        print(
            f"| {name} | {tiles} | {wall:.1f} | {cpu:.1f} | {load:.1f} | {rate:.0f} | "
            f"{rate / base:.2f}x |"
        )
    ceiling = encode_rate * cpus
    print(f"| ceiling: JPEG q95 encoding alone × {cpus} CPUs | - | - | - | - | {ceiling:.0f} | "
          f"{ceiling / base:.2f}x |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20480, help="slide side in pixels")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/jaxwsi_bench"))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    slide_path = args.workdir / f"bench_{args.size}.tiff"
    if not slide_path.exists():
        _, seconds = timed(
            synthetic_slide, slide_path, width=args.size, height=args.size, mpp=MPP,
            tissue_class=1, seed=0,
        )  # fmt: skip
        print(f"made {slide_path} in {seconds:.0f} s")
    cpus = os.cpu_count() or 1
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}; {_cpu_model()}, {cpus} CPUs; load average "
        f"{os.getloadavg()[0]:.1f}; slide {args.size}x{args.size} px at {MPP} µm/px"
    )
    print(f"one jaxwsi worker process starts and runs a task in {pool_start_seconds():.1f} s")
    for name in args.configs:
        bench(slide_path, args.workdir, *CONFIGS[name], cpus)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
