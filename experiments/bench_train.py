"""Benchmark: the tile trainer's loop against the bare jitted step, and the real loader against
device-resident batches (images/s of training).

1. bare step, device-resident: the trainer's compiled step on batches already on the devices
   (the physical limit of this model on this machine);
2. bare step, real loader: the same step, each batch read from TFRecords by the native loader
   and preprocessed by Grain (augmentation "xyr"), then sharded (what the trainer feeds);
3. trainer loop: ``Trainer.train`` itself (progress bar, metrics, checkpoints at epoch ends),
   timed as the difference between a run of ``E + 1`` epochs and one of 1 epoch, so compilation
   and setup cancel out.

Goals: (3) ≥ 0.95 × (2) (loop overhead), (2) against (1) (loader cost). A GPU part (xception at
299 px and resnet50 at 224 px in bfloat16) runs only when JAX sees a GPU.

Run: .venv/bin/python experiments/bench_train.py [--model resnet18 --px 64 --batch 32 --epochs 2]
"""

from __future__ import annotations

import argparse
import io
import platform
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from PIL import Image

import jaxwsi
from jaxwsi.io import TFRecordWriter
from jaxwsi.train.mesh import local_batch_size, shard_batch
from jaxwsi.train.step import make_train_step
from jaxwsi.train.streams import TrainStream
from jaxwsi.train.targets import build_targets


def write_tiles(root: Path, px: int, slides: int, tiles: int) -> jaxwsi.Dataset:
    """``slides`` TFRecords of ``tiles`` noisy JPEG tiles of two classes, and annotations."""
    rng = np.random.default_rng(0)
    (root / "tfrecords").mkdir(parents=True)
    rows = []
    for s in range(slides):
        name = f"s{s}"
        with TFRecordWriter(root / "tfrecords" / f"{name}.tfrecords") as writer:
            for t in range(tiles):
                image = rng.integers(0, 255, (px, px, 3), dtype=np.uint8) // (1 + s % 2)
                buffer = io.BytesIO()
                Image.fromarray(image).save(buffer, format="JPEG", quality=95)
                writer.write(
                    {"image_raw": buffer.getvalue(), "slide": name, "loc_x": t, "loc_y": 0}
                )
        rows.append({"patient": f"p{s}", "slide": name, "label": ["a", "b"][s % 2]})
    pd.DataFrame(rows).to_csv(root / "annotations.csv", index=False)
    return jaxwsi.Dataset(root / "annotations.csv", root / "tfrecords", tile_px=px)


def images_per_second(step, state, batches, steps: int) -> tuple[float, object]:
    """Run ``steps`` steps (after 3 warm-up steps) on ``batches()`` → (images/s, state)."""
    for _ in range(3):
        state, metrics = step(state, batches())
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    count = 0
    for _ in range(steps):
        batch = batches()
        state, metrics = step(state, batch)
        count += len(jax.tree.leaves(batch)[0])
    jax.block_until_ready(metrics)
    return count / (time.perf_counter() - start), state


def trainer_seconds(hp, dataset, outdir: Path) -> float:
    trainer = jaxwsi.train.build_trainer(hp, outdir, "label", progress=False)
    start = time.perf_counter()
    trainer.train(dataset)
    return time.perf_counter() - start


def cpu_part(args: argparse.Namespace, root: Path) -> list[dict]:
    steps_per_epoch = args.steps
    tiles = steps_per_epoch * args.batch // args.slides + 1
    dataset = write_tiles(root, args.px, args.slides, tiles)
    hp = jaxwsi.ModelParams(
        tile_px=args.px,
        tile_um=64,
        model=args.model,
        epochs=1,
        batch_size=args.batch,
        augment="xyr",
        dtype=args.dtype,
    )
    trainer = jaxwsi.train.build_trainer(hp, root / "probe", "label", progress=False)
    trainer.targets = build_targets([dataset], ["label"], "classification")
    mesh = trainer.mesh
    state = trainer._initial_state(head_only=False)
    step = make_train_step(trainer._loss_fn(), mesh)
    stream = TrainStream(
        dataset,
        trainer.targets,
        batch_size=local_batch_size(args.batch, mesh),
        seed=0,
        augment=hp.augment,
        normalizer=None,
    )
    resident = [shard_batch(mesh, next(stream)) for _ in range(4)]
    cycle = iter(range(10**9))
    bare, state = images_per_second(step, state, lambda: resident[next(cycle) % 4], steps_per_epoch)
    fed, state = images_per_second(
        step, state, lambda: shard_batch(mesh, next(stream)), steps_per_epoch
    )

    one = trainer_seconds(hp, dataset, root / "e1")
    more = trainer_seconds(
        jaxwsi.ModelParams(**{**hp.to_dict(), "epochs": 1 + args.epochs}), dataset, root / "eN"
    )
    images = args.epochs * (dataset.num_tiles // args.batch) * args.batch
    loop = images / (more - one)
    return [
        {"feed": "bare step, device-resident batches", "images/s": bare, "ratio": 1.0},
        {
            "feed": "bare step, real loader (TFRecords + Grain)",
            "images/s": fed,
            "ratio": fed / bare,
        },
        {"feed": "Trainer.train loop, real loader", "images/s": loop, "ratio": loop / bare},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--px", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="steps per epoch")
    parser.add_argument("--epochs", type=int, default=2, help="epochs timed in the trainer")
    parser.add_argument("--slides", type=int, default=8)
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = cpu_part(args, Path(tmp))
    print(
        f"\n{args.model} {args.px}px, batch {args.batch}, {jax.device_count()} "
        f"{jax.default_backend()} device(s), {platform.processor() or platform.machine()}"
    )
    print("| feed | images/s | vs bare step |\n|---|---|---|")
    for row in rows:
        print(f"| {row['feed']} | {row['images/s']:.1f} | {row['ratio']:.2f} |")
    if jax.default_backend() != "gpu":
        print("\nGPU part (xception 299 px, resnet50 224 px, bfloat16): not measured (no GPU).")


main()
