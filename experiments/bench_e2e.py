"""Benchmark: wall time of the main job split into its stages, and from_wsi against TFRecords.

1. The main job (experiments/quickstart.py on its defaults: synthetic slides, extraction, 3-fold
   training, evaluation, heatmaps, reports), timed stage by stage from its timings.json.
2. Loader: tiles/s of the same tile stream (same slides, tiles, order, balance) read from
   extracted TFRecords (native decode) and straight from the slides (from_wsi: tile references
   through the native interleaver, pixels read with OpenSlide/tifffile in a Grain map), both
   through Grain with ``--workers`` worker processes (0 = in the main process).

Prints a Markdown table for BENCHMARKS.md.

Run: .venv/bin/python experiments/bench_e2e.py [--skip-main-job] [--slides 8 --seconds 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import grain
import pandas as pd
from absl import flags

import jaxwsi
from jaxwsi.experiment.from_wsi import wsi_dataset
from jaxwsi.slide.extract import ExtractionSettings
from jaxwsi.testing import synthetic_slide

EXPERIMENTS = Path(__file__).resolve().parent


def main_job(outdir: Path) -> dict[str, float]:
    """Run the quickstart on its defaults; its stage timings (seconds)."""
    spec = importlib.util.spec_from_file_location("quickstart", EXPERIMENTS / "quickstart.py")
    assert spec is not None and spec.loader is not None
    quickstart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quickstart)
    started = time.perf_counter()
    code = quickstart.main(["--outdir", str(outdir)])
    total = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"the main job failed (exit {code})")
    timings = json.loads((outdir / "timings.json").read_text())
    return {**timings, "total (wall, incl. imports/compiles)": total}


def loader_rates(
    root: Path, num_slides: int, tile_px: int, seconds: float, workers: int
) -> dict[str, float]:
    """Tiles/s of the TFRecord and from_wsi streams over the same synthetic slides."""
    (root / "slides").mkdir(parents=True)
    rows = []
    for i in range(num_slides):
        synthetic_slide(
            root / "slides" / f"s{i:02d}.tiff",
            width=4096,
            height=3072,
            tissue_class=i % 2,
            seed=i,
        )
        rows.append(
            {"patient": f"p{i}", "slide": f"s{i:02d}", "tissue": ["stroma", "tumour"][i % 2]}
        )
    project = jaxwsi.create_project(
        root / "project", annotations=pd.DataFrame(rows), slides=root / "slides"
    )
    project.extract_tiles(tile_px, tile_px, qc="otsu", num_workers=2, progress=False)
    settings = ExtractionSettings(tile_px=tile_px, tile_um=tile_px, qc="otsu")
    datasets = {
        "TFRecords (extracted)": project.dataset(tile_px, tile_px),
        "from_wsi (slides)": wsi_dataset(
            project.annotations_path, project.slide_paths(), root / "refs", settings
        ),
    }
    rates = {}
    for name, dataset in datasets.items():
        pipeline = dataset.balance("tissue").grain("tissue", batch_size=64, seed=0)
        if workers:
            pipeline = pipeline.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
        iterator = iter(pipeline)
        next(iterator)  # start-up (worker spawn, slide opening) not counted
        tiles, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            tiles += len(next(iterator)["image"])
        rates[name] = tiles / (time.perf_counter() - started)
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-main-job", action="store_true", help="only the loader part")
    parser.add_argument("--slides", type=int, default=8, help="slides for the loader part")
    parser.add_argument("--tile-px", type=int, default=128, help="tile side (px = µm)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per loader")
    parser.add_argument("--workers", type=int, default=2, help="Grain worker processes")
    args = parser.parse_args(argv)
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()  # Grain's workers read absl flags
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_main_job:
            timings = main_job(Path(tmp) / "main_job")
            print("\n| main job stage | seconds |\n|---|---|")
            for stage, seconds in timings.items():
                print(f"| {stage} | {seconds:.1f} |")
        rates = loader_rates(
            Path(tmp) / "loader", args.slides, args.tile_px, args.seconds, args.workers
        )
    print(f"\n| loader ({args.tile_px} px, batch 64, {args.workers} Grain workers) | tiles/s |")
    print("|---|---|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
