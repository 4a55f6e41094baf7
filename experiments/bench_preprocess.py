"""Throughput of stain normalization and augmentation on 299 px tiles: numpy (CPU) and JAX.

Prints a markdown table of tiles/s, next to
- the physical limit of this machine for a per-pixel pass (one core copying the batch), and the
  loader's own per-core ceiling (decoding a 299 px JPEG q95 tile with libjpeg-turbo via Pillow);
- Slideflow's published figures (docs-source/source/norm.rst: 299 px, PyTorch, A100 GPU +
  Threadripper 3960X 24-core CPU): reinhard_fast ≈ 4.2k img/s, macenko ≈ 0.88k, vahadane ≈ 1–2.
  Those are quoted, not measured here.

The JAX rows run on JAX's default backend: a GPU when one is present, else the CPU.

Run: .venv/bin/python experiments/bench_preprocess.py [--batch 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import jax
import numpy as np
from PIL import Image

from jaxwsi.data.augment import apply_augment, draw_augment
from jaxwsi.data.augment_jax import random_augment_jax
from jaxwsi.data.example_rng import example_generators
from jaxwsi.data.preprocess import Preprocessor
from jaxwsi.data.standardize import standardize_jax
from jaxwsi.norm import NORMALIZERS, autoselect

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


def rate(run: Callable[[], object], tiles: int, repeats: int) -> float:
    """Best-of-``repeats`` tiles per second of ``run`` (called once first to warm up/compile)."""
    jax.block_until_ready(run())
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(run())
        best = min(best, time.perf_counter() - start)
    return tiles / best


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
    args = parser.parse_args()

    tiles = make_tiles(args.batch)
    device_tiles = jax.device_put(tiles)
    on_device = f"JAX ({jax.default_backend()})"
    rows: list[tuple[str, str, float, str]] = []

    def measure(name: str, where: str, run: Callable[[], object], count: int) -> None:
        published = PUBLISHED.get(name, "")
        rows.append((name, where, rate(run, count, args.repeats), published))
        print(f"  {name} on {where}: {rows[-1][2]:,.1f} tiles/s", flush=True)

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
        measure(method, "numpy", partial(normalizer.transform, batch), len(batch))
        if normalizer.has_jax:
            measure(
                method, on_device, partial(normalizer.jax_transform(), device_tiles), len(tiles)
            )

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
        "numpy",
        lambda: chain.images(tiles, np.random.default_rng(0)),
        len(tiles),
    )

    print(
        f"\n{time.strftime('%Y-%m-%d')}, {cpu_model()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}, JAX {jax.__version__} on "
        f"{jax.devices()[0].device_kind}; {args.batch} tiles of {TILE_PX} px per batch, "
        f"best of {args.repeats}\n"
    )
    print("| step | runs on | tiles/s | Slideflow, published (A100 + 24-core CPU) |")
    print("|---|---|---:|---|")
    for name, where, value, published in rows:
        print(f"| {name} | {where} | {value:,.1f} | {published} |")


if __name__ == "__main__":
    main()
