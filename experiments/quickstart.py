"""Quickstart: write a small synthetic tile set to TFRecords, index it, verify it, read it back.

Each "slide" gets one TFRecord of JPEG tiles in Slideflow's layout (image_raw, slide, loc_x,
loc_y), a Slideflow-compatible .index.npz, a CRC + Example verification pass, and a read-back
that checks every tile against what was written. Prints a summary; exits non-zero on any mismatch.

Run: .venv/bin/python experiments/quickstart.py [--outdir experiments/out/quickstart]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from jaxwsi.io import TFRecordWriter, build_indexes, load_index, read_records, verify_files


def synthetic_tile(rng: np.random.Generator, tile_px: int) -> np.ndarray:
    """A smooth, stain-coloured RGB tile (uint8): pink background with purple blobs."""
    yy, xx = np.mgrid[0:tile_px, 0:tile_px] / tile_px
    blobs = np.zeros((tile_px, tile_px))
    for cx, cy, r in rng.uniform(0, 1, size=(6, 3)):
        blobs += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (0.01 + 0.02 * r))
    blobs = np.clip(blobs, 0, 1)[..., None]
    pink, purple = np.array([236, 180, 210]), np.array([110, 60, 150])
    tile = (1 - blobs) * pink + blobs * purple + rng.normal(0, 6, (tile_px, tile_px, 3))
    return np.clip(tile, 0, 255).astype(np.uint8)


def encode_jpeg(tile: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(tile).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def write_slides(
    outdir: Path, slides: int, tiles: int, tile_px: int, seed: int
) -> dict[Path, list[dict]]:
    """Writes one TFRecord per slide; returns what was written, per file."""
    rng = np.random.default_rng(seed)
    written: dict[Path, list[dict]] = {}
    for s in range(slides):
        name = f"synthetic_{s:02d}"
        path = outdir / f"{name}.tfrecords"
        grid = max(1, int(np.ceil(np.sqrt(tiles))))
        order = rng.permutation(grid * grid)[:tiles]  # Slideflow shuffles tiles before writing
        rows = []
        with TFRecordWriter(path) as writer:
            for cell in order:
                loc_x = int(cell % grid) * tile_px + tile_px // 2
                loc_y = int(cell // grid) * tile_px + tile_px // 2
                row = {
                    "image_raw": encode_jpeg(synthetic_tile(rng, tile_px), quality=95),
                    "slide": name,
                    "loc_x": loc_x,
                    "loc_y": loc_y,
                }
                writer.write(row)
                rows.append(row)
        written[path] = rows
    return written


def check_read_back(path: Path, rows: list[dict]) -> list[str]:
    """Compares every record of ``path`` with what was written; returns the problems found."""
    problems = []
    records = list(read_records(path))
    if len(records) != len(rows):
        problems.append(f"{path.name}: {len(records)} records read, {len(rows)} written")
    for i, (got, want) in enumerate(zip(records, rows, strict=False)):
        same = (
            got["image_raw"] == want["image_raw"]
            and got["slide"] == want["slide"].encode()
            and got["loc_x"].tolist() == [want["loc_x"]]
            and got["loc_y"].tolist() == [want["loc_y"]]
        )
        if not same:
            problems.append(f"{path.name}: record {i} differs from what was written")
    index = load_index(path)
    if len(index) != len(rows) or int(index[-1].sum()) != path.stat().st_size:
        problems.append(f"{path.name}: index does not cover the file")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", default="experiments/out/quickstart", help="output folder")
    parser.add_argument("--slides", type=int, default=3, help="number of synthetic slides")
    parser.add_argument("--tiles", type=int, default=64, help="tiles per slide")
    parser.add_argument("--tile-px", type=int, default=128, help="tile side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args(argv)

    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    written = write_slides(outdir, args.slides, args.tiles, args.tile_px, args.seed)
    paths = list(written)
    indexes = build_indexes(paths, force=True)
    reports = verify_files(paths)
    problems = [f"{r.path}: {r.error}" for r in reports if not r.ok]
    for path, rows in written.items():
        problems += check_read_back(path, rows)
    seconds = time.perf_counter() - start

    first = next(read_records(paths[0]))
    width, height = Image.open(io.BytesIO(first["image_raw"])).size
    total_bytes = sum(r.bytes for r in reports)
    print(f"jaxwsi quickstart: {len(paths)} slides -> {outdir}/")
    for path, index, report in zip(paths, indexes, reports, strict=True):
        status = "ok" if report.ok else f"BAD ({report.error})"
        print(f"  {path.name}: {report.records} tiles, {report.bytes:,} bytes, {status}")
        print(f"    index: {Path(index).name} ({len(load_index(path))} entries)")
    print(f"  tiles: {width}x{height} JPEG (q95); {total_bytes / 1e6:.2f} MB in {seconds:.2f} s")
    if problems:
        print("PROBLEMS:")
        for p in problems:
            print(f"  {p}")
        return 1
    print("  verified: every CRC, every Example, every tile read back identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
