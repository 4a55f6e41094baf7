"""Segmentation speed: training patches/s and sliding-window prediction megapixels/s.

Measures, on JAX's default backend (the CPU here; a GPU when one is present):
- training patches/s of ``unet2d`` (depth 4, 32 features) on 256² patches, batch 8, and of
  ``unet_xy`` (the Allen width, 32→…→512) at the Allen doc's size [48, 148, 148] → [20, 60, 60],
  batch 1, through the shared jitted train step with the bce_jaccard / aux losses;
- sliding-window prediction of a 1024² image with 256² ``unet2d`` windows, with Gaussian
  blending (overlap 0.25) and without (abutting windows, overlap 0), against the network alone
  on the same number of windows (the blending bookkeeping is host-side numpy);
next to the physical limit: XLA's FLOP count of each step (``cost_analysis``) divided by the
machine's float32 matmul rate (measured here), i.e. the fraction of peak reached.

Run: .venv/bin/python experiments/bench_segment.py [--steps 3] [--skip-3d]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxwsi.segment.config import config_from_dict
from jaxwsi.segment.losses import foreground
from jaxwsi.segment.saved import build_model
from jaxwsi.segment.tiling import sliding_window
from jaxwsi.segment.trainer import loss_fn, make_tx
from jaxwsi.train.mesh import data_mesh, shard_batch
from jaxwsi.train.state import TrainState
from jaxwsi.train.step import make_eval_step, make_train_step

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
parser.add_argument("--skip-3d", action="store_true", help="leave out unet_xy")
args = parser.parse_args()


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """float32 matmul rate of this backend: the compute ceiling the steps are compared with."""
    a = jnp.ones((n, n), jnp.float32)
    mm = jax.jit(lambda x: x @ x)
    mm(a).block_until_ready()
    start = time.perf_counter()
    for _ in range(repeats):
        mm(a).block_until_ready()
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def step_flops(step, *example) -> float:
    cost = step.lower(*example).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan")))


def bench_training(settings: dict, batch_size: int) -> dict:
    config = config_from_dict({"loader": {"datafolder": "-"}, **settings})
    mesh = data_mesh()
    state = TrainState.create(build_model(config), make_tx(config), seed=0)
    step = make_train_step(functools.partial(loss_fn, config), mesh, donate=False)
    size_in, size_out = config.size_in, config.size_out
    rng = np.random.default_rng(0)
    batch = shard_batch(
        mesh,
        {
            "image": rng.random((batch_size, *size_in, 1), np.float32),
            "label": (rng.random((batch_size, *size_out)) > 0.5).astype(np.int32),
            "weight": np.ones((batch_size, *size_out), np.float32),
        },
    )
    flops = step_flops(step, state, batch)
    state, metrics = step(state, batch)  # compile + first run
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(args.steps):
        state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    seconds = (time.perf_counter() - start) / args.steps
    return {
        "patches_per_s": batch_size / seconds,
        "step_s": seconds,
        "gflop_per_step": flops / 1e9,
        "gflops": flops / seconds / 1e9,
    }


def bench_tiling() -> dict:
    config = config_from_dict(
        {"loader": {"datafolder": "-"}, "model": {"name": "unet2d"}, "size_in": [256, 256]}
    )
    mesh = data_mesh()
    state = TrainState.create(build_model(config), make_tx(config), seed=0)
    forward = make_eval_step(lambda m, b: foreground(m(b["image"])[0])[..., None], mesh)

    def predict(windows: np.ndarray) -> np.ndarray:
        return np.asarray(forward(state, shard_batch(mesh, {"image": windows})))

    image = np.random.default_rng(1).random((1024, 1024, 1)).astype(np.float32)
    predict(image[None, :256, :256].repeat(8, 0))  # compile for batches of 8
    predict(image[None, :256, :256].repeat(1, 0))
    out = {}
    for name, overlap, blend in (("blended", 0.25, "gaussian"), ("abutting", 0.0, "constant")):
        calls: list[int] = []

        def counted(w: np.ndarray, calls: list[int] = calls) -> np.ndarray:
            calls.append(len(w))
            return predict(w)

        start = time.perf_counter()
        sliding_window(
            counted,
            image,
            (256, 256),
            (256, 256),
            overlap=overlap,
            blend=blend,
            batch_size=8,
            stride=16,
        )
        seconds = time.perf_counter() - start
        windows = sum(calls)
        start = time.perf_counter()
        for n in calls:
            predict(image[None, :256, :256].repeat(n, 0))
        model_seconds = time.perf_counter() - start
        out[name] = {
            "windows": windows,
            "mp_per_s": image.shape[0] * image.shape[1] / seconds / 1e6,
            "seconds": seconds,
            "network_only_seconds": model_seconds,
        }
    return out


def row(name: str, figure: str, fraction: str = "") -> None:
    print(f"| {name} | {figure} | {fraction} |", flush=True)


print(
    f"backend {jax.default_backend()}, {jax.device_count()} device(s), {os.cpu_count()} cores "
    f"({platform.machine()}), load average {os.getloadavg()[0]:.1f}",
    flush=True,
)
print("| measurement | figure | fraction of the f32 matmul peak |")
print("|---|---|---|")
peak = matmul_gflops()
row("f32 matmul 2048² (peak)", f"{peak:.1f} GFLOP/s", "1")


def report(name: str, r: dict) -> None:
    row(
        f"train {name}",
        f"{r['patches_per_s']:.3g} patches/s ({r['step_s']:.2f} s/step, "
        f"{r['gflop_per_step']:.0f} GFLOP/step)",
        f"{r['gflops'] / peak:.2f}",
    )


report(
    "unet2d 256², batch 8",
    bench_training({"model": {"name": "unet2d"}, "size_in": [256, 256], "size_out": [256, 256]}, 8),
)
for name, r in bench_tiling().items():
    row(
        f"predict 1024² {name} ({r['windows']} windows of 256²)",
        f"{r['mp_per_s']:.3f} MP/s (network alone {r['network_only_seconds']:.1f} s of "
        f"{r['seconds']:.1f} s)",
    )
if not args.skip_3d:
    unet_xy = {
        "model": {"name": "unet_xy"},
        "nclass": [2, 2, 2],
        "size_in": [48, 148, 148],
        "size_out": [20, 60, 60],
        "loss": {"name": "aux"},
    }
    report("unet_xy 48×148×148 → 20×60×60, batch 1", bench_training(unet_xy, 1))
print(f"load average at the end {os.getloadavg()[0]:.1f}", flush=True)
