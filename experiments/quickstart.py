"""The main job on built-in defaults: synthetic slides → tiles → project → loader → device.

1. Writes seeded synthetic whole-slide images (pyramidal TIFFs; two tissue classes).
2. Creates a project with an annotations table (patients, slides, a categorical outcome).
3. Extracts tiles with Otsu QC into TFRecords + Slideflow-compatible indexes, in parallel.
4. Builds a Dataset: category-balanced sampling weights, a per-slide clip, a patient-level
   stratified k-fold split saved to splits.json.
5. Streams training batches through the native loader as a Grain pipeline (stain normalization,
   augmentation, standardization) onto a data-parallel mesh of every visible device, checkpoints
   the iterator state and shows that the restored stream continues identically.
6. Reads the validation fold once (finite mode) and checks every clipped tile came exactly once.

Prints a summary and exits non-zero if any check fails.

Run: bash experiments/run.sh [--outdir experiments/out/quickstart] [--slides 8] ...
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jaxwsi
from jaxwsi.io import verify_files
from jaxwsi.norm import autoselect
from jaxwsi.pipeline import preprocess
from jaxwsi.testing import synthetic_slide

OUTCOME = "tissue"


def make_slides(slides_dir: Path, num_slides: int, seed: int) -> pd.DataFrame:
    """Writes ``num_slides`` synthetic slides of two tissue classes; returns their annotations."""
    slides_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(num_slides):
        name = f"synthetic_{i:02d}"
        tissue_class = i % 2
        synthetic_slide(
            slides_dir / f"{name}.tiff",
            width=2048,
            height=1536,
            mpp=0.5,
            tissue_class=tissue_class,
            tissue_fraction=0.5,
            seed=seed + i,
        )
        # Two slides per patient, both of the same class (patient-level splits keep them together).
        rows.append(
            {
                "patient": f"patient_{i // 2 * 2 + tissue_class:02d}",
                "slide": name,
                OUTCOME: ["stroma", "tumour"][tissue_class],
            }
        )
    return pd.DataFrame(rows)


MARKER = ".jaxwsi-quickstart"


def fresh_output_folder(outdir: Path) -> None:
    """Empties ``outdir`` for a new run: only a folder an earlier run made (it holds the marker
    file) or an empty one is reused, so a mistyped ``--outdir`` never deletes someone's data."""
    if outdir.exists():
        if not (outdir / MARKER).is_file() and any(outdir.iterdir()):
            raise SystemExit(f"{outdir} exists and was not made by the quickstart: pick another")
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True)
    (outdir / MARKER).touch()


def device_mesh() -> jax.sharding.Mesh:
    """A 1-D data-parallel mesh over every visible device."""
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", default="experiments/out/quickstart", help="output folder")
    parser.add_argument("--slides", type=int, default=8, help="synthetic slides (even number)")
    parser.add_argument("--tile-px", type=int, default=128, help="tile side in pixels")
    parser.add_argument("--tile-um", type=int, default=128, help="tile side in micrometres")
    parser.add_argument("--batch-size", type=int, default=32, help="global batch size")
    parser.add_argument("--steps", type=int, default=20, help="training batches to stream")
    parser.add_argument("--clip", type=int, default=20, help="max tiles read per slide")
    parser.add_argument("--workers", type=int, default=2, help="extraction processes")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args(argv)

    outdir = Path(args.outdir)
    fresh_output_folder(outdir)
    problems: list[str] = []
    started = time.perf_counter()

    annotations = make_slides(outdir / "slides", args.slides, args.seed)
    project = jaxwsi.create_project(
        outdir / "project", annotations=annotations, slides=outdir / "slides"
    )
    report = project.extract_tiles(
        args.tile_px, args.tile_um, qc="otsu", num_workers=args.workers, progress=False
    )
    failed = report[report["error"].fillna("").astype(str) != ""]
    problems += [f"extraction failed for {s}" for s in failed["slide"]]
    tfrecords = sorted(project.tfrecord_dir(args.tile_px, args.tile_um).glob("*.tfrecords"))
    problems += [f"{r.path}: {r.error}" for r in verify_files(tfrecords) if not r.ok]

    dataset = (
        project.dataset(args.tile_px, args.tile_um)
        .balance(OUTCOME, strategy="category")
        .clip(args.clip)
    )
    training, validation = dataset.split(OUTCOME, strategy="k-fold", k_fold=2, seed=args.seed)[0]
    train_labels, classes = training.labels(OUTCOME)
    overlap = set(training.patients().values()) & set(validation.patients().values())
    if overlap:
        problems.append(f"patients in both training and validation: {sorted(overlap)}")

    # Training stream: the native loader as a Grain pipeline, preprocessed, onto the mesh.
    mesh = device_mesh()
    per_device = max(1, args.batch_size // jax.device_count())
    batch_size = per_device * jax.device_count()
    normalizer = autoselect("reinhard_fast")
    loader = training.grain(OUTCOME, batch_size=batch_size, seed=args.seed)
    pipeline = preprocess(loader, normalizer=normalizer, augment="xyr", seed=args.seed)
    pipeline = pipeline.map(lambda b: {"image": b["image"], "label": b["label"]})
    sharding = NamedSharding(mesh, P("data"))
    iterator = iter(pipeline)
    stream_start = time.perf_counter()
    for _ in range(args.steps):
        batch = jax.device_put(next(iterator), sharding)
    jax.block_until_ready(batch)
    stream_seconds = time.perf_counter() - stream_start
    state = json.loads(json.dumps(iterator.get_state()))  # what a checkpoint stores
    expected = [next(iterator) for _ in range(2)]
    restored = iter(pipeline)
    restored.set_state(state)
    resumed = [next(restored) for _ in range(2)]
    if not all(
        np.array_equal(a["image"], b["image"]) for a, b in zip(expected, resumed, strict=True)
    ):
        problems.append("the restored training stream differs from the uninterrupted one")

    # Validation: one finite pass, every clipped tile exactly once.
    validation_loader = validation.interleaver(
        OUTCOME,
        batch_size=batch_size,
        infinite=False,
        drop_remainder=False,
        incl_loc=True,
        incl_slidenames=True,
    )
    seen = [
        (s, x, y)
        for b in validation_loader
        for s, x, y in zip(b["slide"], b["loc_x"], b["loc_y"], strict=True)
    ]
    clipped = validation.num_tiles  # the sum of the clipped counts
    if len(seen) != len(set(seen)) or len(seen) != clipped:
        problems.append(
            f"validation read {len(seen)} tiles ({len(set(seen))} distinct), expected {clipped}"
        )

    total = time.perf_counter() - started
    print(f"jaxwsi quickstart -> {outdir}/")
    print(
        f"  slides: {len(annotations)} synthetic ({', '.join(classes)}), "
        f"{int(report['num_tiles'].sum())} tiles extracted at {args.tile_px}px/{args.tile_um}um "
        f"into {len(tfrecords)} TFRecords (every CRC and Example verified)"
    )
    print(f"  dataset: {dataset.num_tiles} tiles, clip {args.clip}/slide, category-balanced")
    print(
        f"  split (k-fold, patient-level): {len(training.slides())} training slides, "
        f"{len(validation.slides())} validation slides"
    )
    print(
        f"  training stream: {args.steps} batches of {batch_size} on {jax.device_count()} "
        f"device(s) ({jax.devices()[0].platform}), "
        f"{args.steps * batch_size / stream_seconds:,.0f} tiles/s "
        f"(reinhard_fast + xyr augment + standardize)"
    )
    print(
        f"  image batch {tuple(batch['image'].shape)} {batch['image'].dtype}, "
        f"sharded {batch['image'].sharding.spec}"
    )
    print(f"  checkpoint: iterator state {json.dumps(state)[:60]}... restores exactly")
    print(f"  validation: {len(seen)} tiles, each exactly once")
    print(f"  total {total:.1f} s")
    if problems:
        print("PROBLEMS:")
        for p in problems:
            print(f"  {p}")
        return 1
    print("  all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
