"""Exact resume and multi-process training of the tile trainer, in child processes on the CPU:
SIGKILL at a random step + resume ends bitwise equal to an uninterrupted run; two processes
(jax.distributed, localhost coordinator, 4 devices each) end with the weights of one process
with 8 devices."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.train_data import write_cohort

CHILD = Path(__file__).with_name("train_child.py")


def run(*args: object, devices: int = 8, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
    }
    done = subprocess.run(
        [sys.executable, str(CHILD), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    write_cohort(root, tiles_per_slide=12)
    return root


@pytest.fixture(scope="module")
def uninterrupted(root, tmp_path_factory):
    outdir = tmp_path_factory.mktemp("whole")
    run(root, outdir)
    return load(outdir / "final.npz")


def test_sigkill_then_resume_is_bitwise_equal(root, uninterrupted, tmp_path):
    steps = 2 * (6 * 12 // 16)  # 2 epochs of the training tiles
    kill_at = int(np.random.default_rng(7).integers(2, steps))
    killed = run(root, tmp_path, "--kill-at", kill_at, check=False)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (tmp_path / "final.npz").exists()
    run(root, tmp_path, "--resume")
    resumed = load(tmp_path / "final.npz")
    assert resumed.keys() == uninterrupted.keys()
    for key, value in uninterrupted.items():
        np.testing.assert_array_equal(resumed[key], value, err_msg=key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process(root, tmp_path):
    one = tmp_path / "one"
    run(root, one, "--workers", "2", "--epochs", "1", "--validate")
    two = tmp_path / "two"
    port = free_port()
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
    }
    children = [
        subprocess.Popen(
            [
                sys.executable,
                str(CHILD),
                str(root),
                str(two),
                "--epochs",
                "1",
                "--validate",
                "--process",
                str(i),
                "--processes",
                "2",
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for child in children:
        _, err = child.communicate(timeout=600)
        assert child.returncode == 0, err[-4000:]
    expected, got = load(one / "final.npz"), load(two / "final.npz")
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
    # The validation predictions of both processes were gathered: same metrics.
    assert (one / "slide_auc.txt").read_text() == (two / "slide_auc.txt").read_text()
