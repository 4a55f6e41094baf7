"""Benchmark: decoded tiles/s of the native interleaving loader against the anchors and the limit.

On one generated set of TFRecords (Slideflow defaults: 299×299 JPEG q95 tiles of real H&E
texture, resampled from tests/fixtures/images/histo.jpg), batch 64, weighted over files, all
in one run:
- jaxwsi.io.Interleaver with 1 … all threads (read + CRC verify + parse + decode to uint8);
- the libjpeg-turbo limit: `tjbench` decode rate of sample tiles × cores (Debian
  libjpeg-turbo-progs; if absent, Pillow's single-thread decode rate × cores, and the table
  says so), and as a reference the loader's own decoder over every tile of the set in memory
  (rust/core/examples/decode_limit.rs: no reading, parsing or Python);
- tf.data best practice (interleave, parse, decode_jpeg, batch, prefetch) when tensorflow is
  importable (never a jaxwsi dependency);
- the pure-Python `tfrecord` reader (multi_tfrecord_loader, weighted) + Pillow, one thread, as
  under Slideflow's PyTorch loader;
- Grain's experimental.TFRecordIterDataset per file, interleaved, + Pillow decode in .map.
Peak RSS of the jaxwsi loader is measured in fresh processes over half and all of the files.

Run: .venv/bin/python experiments/bench_loader.py [--files 32 --tiles 64 --seconds 3]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import io
import json
import multiprocessing
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from jaxwsi.io import Interleaver, TFRecordWriter

TILE = 299
BATCH = 64
HISTO = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "images" / "histo.jpg"


def make_tiles(rng: np.random.Generator, n: int) -> list[bytes]:
    """JPEG q95 tiles: random rescale (1–2×), crop, rotation and flip of the H&E image."""
    source = Image.open(HISTO).convert("RGB")
    tiles = []
    for _ in range(n):
        scale = rng.uniform(1.0, 2.0)
        w, h = int(source.width * scale), int(source.height * scale)
        big = source.resize((w, h), Image.BICUBIC)
        x, y = rng.integers(0, w - TILE), rng.integers(0, h - TILE)
        tile = big.crop((x, y, x + TILE, y + TILE)).rotate(90 * int(rng.integers(4)))
        if rng.random() < 0.5:
            tile = tile.transpose(Image.FLIP_LEFT_RIGHT)
        buf = io.BytesIO()
        tile.save(buf, format="JPEG", quality=95)
        tiles.append(buf.getvalue())
    return tiles


def write_dataset(folder: Path, files: int, tiles: int, seed: int = 0) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pool = make_tiles(rng, 256)  # reused across files; every record is its own JPEG stream
    paths = []
    for f in range(files):
        path = folder / f"slide{f:03d}.tfrecords"
        paths.append(str(path))
        if path.exists():
            continue
        with TFRecordWriter(path) as writer:
            for i in range(tiles):
                writer.write(
                    {
                        "image_raw": pool[int(rng.integers(len(pool)))],
                        "slide": f"slide{f:03d}",
                        "loc_x": i,
                        "loc_y": f,
                    }
                )
    return paths


def rate(next_batch, seconds: float) -> tuple[float, float]:
    """Decoded tiles per wall second and per CPU second (all threads of this process) of
    `next_batch()` (returns a batch of tiles), after two warm-up batches. The CPU rate does
    not depend on other load on the machine; the wall rate does."""
    next_batch()
    next_batch()
    tiles, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        tiles += len(next_batch())
    return tiles / (time.perf_counter() - start), tiles / (time.process_time() - cpu)


def bench_jaxwsi(paths, weights, threads: int, seconds: float) -> tuple[float, float]:
    il = Interleaver(paths, weights=weights, batch_size=BATCH, num_threads=threads, rank=0,
                     num_replicas=1)  # fmt: skip
    return rate(lambda: next(il)["image"], seconds)


def bench_buffer_pool(paths, batches: int = 20) -> tuple[float, float]:
    """CPU ms per batch when each batch is freed at once (its buffer is reused from the pool)
    and when all are kept alive (every batch needs fresh memory, so pages fault in)."""
    il = Interleaver(paths, batch_size=BATCH, rank=0, num_replicas=1)
    next(il)
    start = time.process_time()
    for _ in range(batches):
        next(il)
    pooled = (time.process_time() - start) / batches
    held, start = [], time.process_time()
    for _ in range(batches):
        held.append(next(il))
    fresh = (time.process_time() - start) / batches
    return 1e3 * pooled, 1e3 * fresh


def pillow_decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def bench_tfrecord_pillow(paths, weights, seconds: float) -> tuple[float, float]:
    from tfrecord.reader import multi_tfrecord_loader

    folder = os.path.dirname(paths[0])
    splits = {Path(p).stem: w for p, w in zip(paths, weights, strict=True)}
    loader = multi_tfrecord_loader(
        os.path.join(folder, "{}.tfrecords"), None, splits, description={"image_raw": "byte"}
    )

    def batch():
        tiles = [pillow_decode(bytes(next(loader)["image_raw"])) for _ in range(BATCH)]
        return np.stack(tiles)

    return rate(batch, seconds)


def _grain_parse_decode(record: bytes) -> np.ndarray:
    from tfrecord import example_pb2

    example = example_pb2.Example()
    example.ParseFromString(record)
    return pillow_decode(example.features.feature["image_raw"].bytes_list.value[0])


def bench_grain_pillow(paths, seconds: float, cores: int) -> tuple[float, float]:
    import grain

    # Files are listed many times over so the stream outlasts the timing window.
    sources = [grain.experimental.TFRecordIterDataset(p) for p in paths * 50]
    ds = grain.experimental.InterleaveIterDataset(sources, cycle_length=cores)
    ds = ds.map(_grain_parse_decode).batch(BATCH, drop_remainder=True)
    it = iter(ds)
    return rate(lambda: next(it), seconds)


def bench_tfdata(paths, weights, seconds: float) -> tuple[float, float] | None:
    """tf.data's best-practice pipeline, in a spawned child process (TensorFlow and the `tfrecord`
    package both register the tensorflow.Example protos, so they cannot share one process);
    None when tensorflow is not installed."""
    if importlib.util.find_spec("tensorflow") is None:
        return None
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_tfdata_rate, paths, weights, seconds).result()


def _tfdata_rate(paths, weights, seconds: float) -> tuple[float, float]:
    import tensorflow as tf

    files = [tf.data.TFRecordDataset(p).repeat() for p in paths]
    probabilities = list(np.asarray(weights) / sum(weights))
    ds = tf.data.Dataset.sample_from_datasets(files, weights=probabilities)
    spec = {"image_raw": tf.io.FixedLenFeature([], tf.string)}

    def parse(x):
        return tf.io.decode_jpeg(tf.io.parse_single_example(x, spec)["image_raw"], channels=3)

    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    it = iter(ds.batch(BATCH).prefetch(tf.data.AUTOTUNE))
    return rate(lambda: next(it).numpy(), seconds)


def decode_limit(tiles: list[bytes], cores: int, seconds: float) -> tuple[float, float, str]:
    """libjpeg-turbo on sample tiles: (tiles/s on all cores, tiles per CPU second, how).

    tjbench on each sample tile (no warm-up; CPU time from the child's rusage), averaged as
    time per tile, × cores; without tjbench, Pillow's single-thread decode × cores."""
    tjbench = shutil.which("tjbench")
    if tjbench:
        wall_per_tile, cpu_per_tile = [], []
        for tile in tiles:
            tmp = Path("/tmp/jaxwsi_bench_tile.jpg")
            tmp.write_bytes(tile)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            cmd = [tjbench, str(tmp), "-benchtime", str(seconds), "-warmup", "0"]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            fps = [float(line.split()[-2]) for line in out.splitlines() if "Frame rate" in line]
            wall_per_tile.append(1 / fps[0])
            cpu_per_tile.append(cpu / (fps[0] * seconds))
        per_core = 1 / float(np.mean(wall_per_tile))
        name = (
            f"tjbench (libjpeg-turbo {_tjbench_version()}) on {len(tiles)} sample tiles, "
            f"{per_core:.0f} tiles/s × {cores}"
        )
        return per_core * cores, 1 / float(np.mean(cpu_per_tile)), name
    batch = tiles * (BATCH // len(tiles) + 1)
    wall, per_cpu = rate(lambda: [pillow_decode(t) for t in batch], seconds)
    return wall * cores, per_cpu, f"Pillow single-thread decode × {cores} (no tjbench)"


def in_memory_decode_limit(
    paths: list[str], cores: int, seconds: float, decoder: str = "jaxwsi"
) -> tuple[float, float]:
    """(tiles/s on all cores, tiles per CPU second) of the loader's own decoder (or zune-jpeg)
    over every tile of the set, in memory, one thread (rust/core/examples/decode_limit.rs)."""
    root = Path(__file__).resolve().parents[1]
    cargo = ["cargo", "build", "--release", "--quiet", "-p", "jaxwsi-core"]
    subprocess.run([*cargo, "--example", "decode_limit"], cwd=root, check=True)
    binary = root / "target" / "release" / "examples" / "decode_limit"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [str(binary), "--seconds", str(seconds), "--decoder", decoder, *paths]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    tiles, wall = int(out[0]), float(out[1])
    return tiles / wall * cores, tiles / cpu


def _tjbench_version() -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libjpeg-turbo-progs"],
                         capture_output=True, text=True).stdout  # fmt: skip
    return out.strip() or "unknown version"


def rss_probe(paths: list[str], seconds: float) -> None:
    """Child mode: print RSS (MiB) before the first batch and the peak after running."""
    il = Interleaver(paths, batch_size=BATCH, rank=0, num_replicas=1)
    il.get_state()  # builds the native loader (indexes, plan) before the baseline
    baseline = _status_mib("VmRSS")
    rate(lambda: next(il)["image"], seconds)
    print(baseline, _status_mib("VmHWM"))


def _status_mib(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS now, VmHWM peak since exec) in MiB.
    (ru_maxrss is not used: after fork+exec it still counts the parent's pages.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss(paths: list[str], seconds: float) -> tuple[float, float]:
    cmd = [sys.executable, __file__, "--rss-probe", json.dumps(paths), "--seconds", str(seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    return float(out[-2]), float(out[-1])


def machine() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    return f"{model}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=32)
    parser.add_argument("--tiles", type=int, default=64, help="tiles per file")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per row")
    parser.add_argument("--folder", default="/tmp/jaxwsi_bench_loader")
    parser.add_argument("--rss-probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_probe:
        rss_probe(json.loads(args.rss_probe), args.seconds)
        return
    cores = len(os.sched_getaffinity(0))
    folder = Path(args.folder) / f"{args.files}x{args.tiles}"
    paths = write_dataset(folder, args.files, args.tiles)
    weights = list(np.random.default_rng(1).uniform(0.5, 2.0, len(paths)))
    size_mb = sum(os.path.getsize(p) for p in paths) / 1e6
    print(f"# {machine()}; {len(paths)} files × {args.tiles} tiles, {size_mb:.0f} MB, "
          f"{TILE}px JPEG q95, batch {BATCH}, page cache warm")  # fmt: skip
    print(f"# load average before: {os.getloadavg()[0]:.2f}")
    rows: list[tuple[str, tuple[float, float] | None]] = []
    samples = _sample_tiles(paths, 32)
    limit, limit_cpu, limit_name = decode_limit(samples, cores, 0.5)
    decode_only = in_memory_decode_limit(paths, cores, args.seconds)
    zune = in_memory_decode_limit(paths, cores, args.seconds, decoder="zune")
    for threads in range(1, cores + 1):
        name = f"jaxwsi Interleaver, {threads} thread(s)"
        rows.append((name, bench_jaxwsi(paths, weights, threads, args.seconds)))
    rows.append(("tf.data best practice", bench_tfdata(paths, weights, args.seconds)))
    name = "tfrecord (pure Python, weighted) + Pillow, 1 thread"
    rows.append((name, bench_tfrecord_pillow(paths, weights, args.seconds)))
    name = f"Grain TFRecordIterDataset + Pillow (interleave {cores} files, unweighted)"
    rows.append((name, bench_grain_pillow(paths, args.seconds, cores)))
    print(f"# load average after: {os.getloadavg()[0]:.2f}")
    decode_wall, decode_cpu = decode_only
    print(
        "\n| loader | tiles/s (wall) | % of limit (wall) | tiles per CPU-second "
        "| % of limit (CPU) | % of in-memory decode (CPU) |\n|---|---:|---:|---:|---:|---:|"
    )
    print(f"| limit: {limit_name} | {limit:,.0f} | 100% | {limit_cpu:,.0f} | 100% | |")
    print(
        f"| reference: jaxwsi's decoder (libjpeg-turbo 3.1) over every tile in memory, "
        f"1 thread × {cores} | {decode_wall:,.0f} | {100 * decode_wall / limit:.0f}% | "
        f"{decode_cpu:,.0f} | {100 * decode_cpu / limit_cpu:.0f}% | 100% |"
    )
    print(
        f"| reference: zune-jpeg 0.5 over every tile in memory, 1 thread × {cores} | "
        f"{zune[0]:,.0f} | {100 * zune[0] / limit:.0f}% | {zune[1]:,.0f} | "
        f"{100 * zune[1] / limit_cpu:.0f}% | {100 * zune[1] / decode_cpu:.0f}% |"
    )
    for name, value in rows:
        if value is None:
            print(f"| {name} | not run (tensorflow not installed) | | | | |")
        else:
            wall, cpu = value
            print(
                f"| {name} | {wall:,.0f} | {100 * wall / limit:.0f}% | {cpu:,.0f} | "
                f"{100 * cpu / limit_cpu:.0f}% | {100 * cpu / decode_cpu:.0f}% |"
            )
    pooled, fresh = bench_buffer_pool(paths)
    print(
        f"\nCPU per batch of {BATCH}: {pooled:.1f} ms with pooled batch buffers, "
        f"{fresh:.1f} ms when every batch needs fresh memory"
    )
    larger = write_dataset(Path(args.folder) / f"{4 * args.files}x{args.tiles}", 4 * args.files,
                           args.tiles)  # fmt: skip
    for subset in (paths, larger):
        baseline, peak = peak_rss(subset, args.seconds)
        size = sum(os.path.getsize(p) for p in subset) / 1e6
        print(
            f"\njaxwsi loader process over {len(subset)} files ({size:.0f} MB): RSS "
            f"{baseline:.0f} MiB after imports and index load, peak {peak:.0f} MiB while loading"
        )


def _sample_tiles(paths: list[str], count: int) -> list[bytes]:
    """The first tile of `count` files spread over the set."""
    from jaxwsi.io import read_records

    step = max(1, len(paths) // count)
    return [next(iter(read_records(p)))["image_raw"] for p in paths[::step][:count]]


if __name__ == "__main__":
    main()
