"""A training run in its own process, for the resume and multi-process tests.

``python tests/train_child.py ROOT OUTDIR [--kill-at N] [--resume] [--workers W]
[--process I --processes P --port PORT]``: trains the tile trainer on the cohort in ROOT
(written by `tests.train_data.write_cohort`) and saves the final parameters and model state to
``OUTDIR/final.npz`` (process 0). ``--kill-at N`` sends SIGKILL to itself just before the N-th
train step of this process; ``--process`` joins a jax.distributed job on localhost.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

parser = argparse.ArgumentParser()
parser.add_argument("root", type=Path)
parser.add_argument("outdir", type=Path)
parser.add_argument("--kill-at", type=int, default=0)
parser.add_argument("--resume", action="store_true")
parser.add_argument("--workers", type=int, default=1)
parser.add_argument("--process", type=int, default=None)
parser.add_argument("--processes", type=int, default=1)
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--validate", action="store_true")
args = parser.parse_args()

from jaxwsi.train.mesh import initialize_distributed  # noqa: E402

if args.process is not None:
    initialize_distributed(
        coordinator_address=f"localhost:{args.port}",
        num_processes=args.processes,
        process_id=args.process,
    )

import jax  # noqa: E402
import numpy as np  # noqa: E402

import jaxwsi  # noqa: E402
import jaxwsi.train.trainer as trainer_module  # noqa: E402
from jaxwsi.train.checkpoint import host_numpy  # noqa: E402
from tests.train_data import split  # noqa: E402

if args.kill_at:
    original = trainer_module.make_train_step

    def killing_step(*a, **k):
        step = original(*a, **k)
        calls = [0]

        def wrapped(state, batch):
            calls[0] += 1
            if calls[0] == args.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return step(state, batch)

        return wrapped

    trainer_module.make_train_step = killing_step

dataset = jaxwsi.Dataset(args.root / "annotations.csv", args.root / "tfrecords", tile_px=32)
train, val = split(dataset)
hp = jaxwsi.ModelParams(
    tile_px=32,
    tile_um=64,
    model="train_tiny",
    epochs=args.epochs,
    batch_size=16,
    learning_rate=1e-2,
    augment="xyr",
    dropout=0.3,
    seed=3,
)
trainer = jaxwsi.train.build_trainer(
    hp, args.outdir, "tissue", save_every=2, progress=False, loader_workers=args.workers
)
results = trainer.train(train, val if args.validate else None, resume=args.resume)
state = host_numpy({"params": trainer.state.params, "rest": trainer.state.rest})
flat = {
    jax.tree_util.keystr(p): np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(state)
}
if jax.process_index() == 0:
    np.savez(args.outdir / "final.npz", **flat)
    if args.validate:
        (args.outdir / "slide_auc.txt").write_text(str(results[f"epoch{args.epochs}"]["slide_auc"]))
