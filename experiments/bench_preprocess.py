"""Throughput of stain normalization and augmentation on 299 px tiles: native, numpy and JAX.

Prints a markdown table of tiles/s (wall clock) and tiles per CPU-second (this process, all its
threads: the steadier figure on a shared machine) for
- the native CPU path (``transform()``: Rust kernels on rayon's pool), with 1 and 2 threads, each
  measured in a child process started with ``RAYON_NUM_THREADS``;
- the numpy reference code (``transform(native=False)``) the kernels are tested against;
- JAX on JAX's default backend (a GPU when one is present, else the CPU);
next to
- the physical limit of this machine for a per-pixel pass (one core copying the batch), and the
  loader's own per-core ceiling (decoding a 299 px JPEG q95 tile with libjpeg-turbo via Pillow);
- Slideflow's published figures (docs-source/source/norm.rst: 299 px, PyTorch, A100 GPU +
  Threadripper 3960X 24-core CPU): reinhard_fast ≈ 4.2k img/s, macenko ≈ 0.88k, vahadane ≈ 1–2.
  Those are quoted, not measured here.

Run: .venv/bin/python experiments/bench_preprocess.py [--batch 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import jax
import numpy as np
from PIL import Image

from jaxwsi.norm import NORMALIZERS, autoselect
from jaxwsi.pipeline.augment import apply_augment, draw_augment
from jaxwsi.pipeline.augment_jax import random_augment_jax
from jaxwsi.pipeline.example_rng import example_generators
from jaxwsi.pipeline.preprocess import Preprocessor
from jaxwsi.pipeline.standardize import standardize_jax

TILE_PX = 299
HISTO = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "images" / "histo.jpg"
PUBLISHED = {"reinhard_fast": "≈4,200", "macenko": "≈880", "vahadane": "≈1–2"}


def make_tiles(count: int) -> np.ndarray:
    """``count`` distinct 299 px H&E tiles: crops of the fixture image, flipped and shifted."""
    histo = np.asarray(Image.open(HISTO).convert("RGB"))
    tiles = []
    for index in range(count):
        x = (index * 37) % (histo.shape[1] - TILE_PX)
        tile = histo[:TILE_PX, x : x + TILE_PX]
        tiles.append(np.rot90(tile, index % 4) if index % 2 else tile[:, ::-1])
    return np.ascontiguousarray(np.stack(tiles))


#: A measured row: step, where it runs, tiles/s (wall), tiles per CPU-second, published figure.
Row = tuple[str, str, float, float, str]


def rate(run: Callable[[], object], tiles: int, repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` tiles per wall second and per CPU-second of ``run`` (after a warm-up)."""
    jax.block_until_ready(run())
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(run())
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return tiles / best_wall, tiles / max(best_cpu, 1e-9)


def native_rows(tiles: np.ndarray, args: argparse.Namespace) -> list[Row]:
    """The native transform of each normalizer that has one, on rayon's pool as configured."""
    rows = []
    where = f"native, {os.environ.get('RAYON_NUM_THREADS', 'all')} thread(s)"
    for method, cls in NORMALIZERS.items():
        if cls.has_native:
            normalizer = autoselect(method).fit_reference()
            wall, cpu = rate(partial(normalizer.transform, tiles), len(tiles), args.repeats)
            rows.append((method, where, wall, cpu, PUBLISHED.get(method, "")))
    return rows


def native_rows_with_threads(threads: int, args: argparse.Namespace) -> list[Row]:
    """:func:`native_rows` in a child process whose rayon pool has ``threads`` threads."""
    command = [sys.executable, __file__, "--native-only", "--batch", str(args.batch)]
    command += ["--repeats", str(args.repeats)]
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return [tuple(row) for row in json.loads(result.stdout.splitlines()[-1])]


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="tiles per batch")
    parser.add_argument("--vahadane-batch", type=int, default=8, help="tiles per vahadane batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--native-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    tiles = make_tiles(args.batch)
    if args.native_only:
        print(json.dumps(native_rows(tiles, args)))
        return
    native = {threads: native_rows_with_threads(threads, args) for threads in (1, 2)}
    device_tiles = jax.device_put(tiles)
    on_device = f"JAX ({jax.default_backend()})"
    rows: list[Row] = []
    loads = [os.getloadavg()[0]]

    def measure(name: str, where: str, run: Callable[[], object], count: int) -> None:
        wall, cpu = rate(run, count, args.repeats)
        rows.append((name, where, wall, cpu, PUBLISHED.get(name, "")))
        print(f"  {name} on {where}: {wall:,.1f} tiles/s, {cpu:,.1f} per CPU-second", flush=True)

    copy_target = np.empty_like(tiles)
    measure(
        "limit: copy the batch", "numpy, 1 core", lambda: np.copyto(copy_target, tiles), len(tiles)
    )
    buffer = io.BytesIO()
    Image.fromarray(tiles[0]).save(buffer, format="JPEG", quality=95)
    encoded = buffer.getvalue()

    def decode() -> list[np.ndarray]:
        return [np.asarray(Image.open(io.BytesIO(encoded))) for _ in range(len(tiles))]

    measure("limit: JPEG q95 decode", "Pillow, 1 core", decode, len(tiles))

    for method in NORMALIZERS:
        normalizer = autoselect(method).fit_reference()
        batch = tiles[: args.vahadane_batch] if method == "vahadane" else tiles
        for threads in (1, 2):
            rows.extend(row for row in native[threads] if row[0] == method)
        reference = partial(normalizer.transform, batch, native=False)
        measure(method, "numpy reference", reference, len(batch))
        if normalizer.has_jax:
            measure(
                method, on_device, partial(normalizer.jax_transform(), device_tiles), len(tiles)
            )
        loads.append(os.getloadavg()[0])

    def numpy_augment() -> np.ndarray:
        drawn = draw_augment("xyrjb", example_generators(np.random.default_rng(0), len(tiles)))
        return apply_augment(tiles, drawn)

    measure('augment "xyrjb"', "numpy", numpy_augment, len(tiles))
    key = jax.random.key(0)

    def jax_augment() -> jax.Array:
        return standardize_jax(random_augment_jax(device_tiles, key, "xyrb"))

    measure('augment "xyrb" + standardize', on_device, jax_augment, len(tiles))
    chain = Preprocessor(normalizer="reinhard_fast", augment="xyrjb", standardize=True)
    measure(
        'chain: reinhard_fast + "xyrjb" + standardize',
        "native (all threads) + numpy",
        lambda: chain.images(tiles, np.random.default_rng(0)),
        len(tiles),
    )

    loads.append(os.getloadavg()[0])
    print(
        f"\n{time.strftime('%Y-%m-%d %H:%M')}, {cpu_model()}, {os.cpu_count()} cores, "
        f"1-minute load average {min(loads):.1f}–{max(loads):.1f} during the run, JAX "
        f"{jax.__version__} on {jax.devices()[0].device_kind}; {args.batch} tiles of {TILE_PX} px "
        f"per batch, best of {args.repeats}\n"
    )
    print(
        "| step | runs on | tiles/s | tiles per CPU-second "
        "| Slideflow, published (A100 + 24-core CPU) |"
    )
    print("|---|---|---:|---:|---|")
    for name, where, wall, cpu, published in rows:
        print(f"| {name} | {where} | {wall:,.1f} | {cpu:,.1f} | {published} |")


if __name__ == "__main__":
    main()
