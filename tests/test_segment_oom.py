"""Out-of-memory handling, with XLA's RESOURCE_EXHAUSTED error injected into the train step:
halve the batch and go on from the same patch, error with advice at 0, other errors propagate;
``size_in: auto`` / ``batch_size: auto`` pick the largest that ran."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest
import tifffile

from jaxwsi.segment import trainer
from jaxwsi.segment.config import config_from_dict
from jaxwsi.segment.memory import OutOfMemoryError, halved_batch, is_oom, largest_fitting
from jaxwsi.segment.sizes import auto_candidates

FIXTURES = Path(__file__).parent / "fixtures" / "segmentation"
OOM = "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1.00GiB."


@pytest.fixture(scope="module")
def datafolder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nuclei")
    image = tifffile.imread(FIXTURES / "img2d.tif")[:128, :128]
    mask = tifffile.imread(FIXTURES / "mask2d.tif")[:128, :128]
    for folder, array in (("input", image), ("output", mask)):
        (root / folder).mkdir()
        tifffile.imwrite(root / folder / "crop.tif", array)
    return root


def settings(datafolder: Path, run: Path, **changes) -> dict:
    base = {
        "model": {"name": "unet2d", "depth": 2, "features": 4},
        "size_in": [32, 32],
        "checkpoint_dir": str(run),
        "loader": {"datafolder": str(datafolder), "batch_size": 16, "PatchPerBuffer": 32},
        "epochs": 2,
        "validation": {"preview": 0},
    }
    return {**base, **changes}


def fail_when(monkeypatch, too_big, message: str = OOM) -> list[tuple]:
    """Train steps raise XLA's runtime error ``message`` when ``too_big(image shape)``; returns
    the shapes of the batches that ran."""
    real = trainer.make_train_step
    ran: list[tuple] = []

    def factory(*args, **kwargs):
        step = real(*args, **kwargs)

        def step_with_limit(state, batch):
            if too_big(batch["image"].shape):
                raise jax.errors.JaxRuntimeError(message)
            ran.append(batch["image"].shape)
            return step(state, batch)

        return step_with_limit

    monkeypatch.setattr(trainer, "make_train_step", factory)
    return ran


def test_out_of_memory_halves_the_batch_and_goes_on(datafolder, tmp_path, monkeypatch, capsys):
    devices = jax.device_count()
    start = 2 * devices
    ran = fail_when(monkeypatch, lambda shape: shape[0] > devices)
    config = settings(datafolder, tmp_path / "run")
    config["loader"] = {**config["loader"], "batch_size": start, "PatchPerBuffer": 2 * start}
    result = trainer.train(config_from_dict(config))
    assert result.batch_size == devices and not result.stopped
    # Every patch of both epochs trained once at the halved size: nothing lost, no restart.
    assert ran == [(devices, 32, 32, 1)] * 8
    assert result.step == 8 and result.epochs_done == 2
    assert f"batch size {start} → {devices}" in capsys.readouterr().out


def test_out_of_memory_at_one_patch_per_device(datafolder, tmp_path, monkeypatch):
    fail_when(monkeypatch, lambda shape: True)
    with pytest.raises(OutOfMemoryError, match="use smaller patches"):
        trainer.train(config_from_dict(settings(datafolder, tmp_path / "run")))


def test_other_runtime_errors_propagate(datafolder, tmp_path, monkeypatch):
    fail_when(monkeypatch, lambda shape: True, "INTERNAL: something else broke")
    with pytest.raises(jax.errors.JaxRuntimeError, match="something else broke"):
        trainer.train(config_from_dict(settings(datafolder, tmp_path / "run")))


def test_auto_sizes_are_the_largest_that_ran(datafolder, tmp_path, monkeypatch):
    """Patches above 64² and batches above 2 per device 'run out of memory'."""
    devices = jax.device_count()
    fail_when(monkeypatch, lambda shape: shape[1] > 64 or shape[0] > 2 * devices)
    config = settings(datafolder, tmp_path / "run", size_in="auto", epochs=1)
    config["loader"] = {**config["loader"], "batch_size": "auto", "PatchPerBuffer": 4 * devices}
    result = trainer.train(config_from_dict(config))
    sides = [i[0] for i, _ in auto_candidates("unet2d", (128, 128), depth=2)]
    assert len(sides) == 8 and sides[-1] == 128  # geometric steps up to the image size
    best = max(s for s in sides if s <= 64)
    assert result.size_in == result.size_out == [best, best]
    assert result.batch_size == 2 * devices


def test_memory_helpers():
    assert is_oom(jax.errors.JaxRuntimeError(OOM))
    assert not is_oom(jax.errors.JaxRuntimeError("INTERNAL: x"))
    assert not is_oom(MemoryError("host memory"))
    assert halved_batch(16, 4) == 8 and halved_batch(12, 4) == 4
    with pytest.raises(OutOfMemoryError, match="1 patch"):
        halved_batch(4, 4)
    tried = []

    def fits(n):
        tried.append(n)
        if n > 5:
            raise jax.errors.JaxRuntimeError(OOM)

    assert largest_fitting([1, 2, 4, 8, 16], fits, "x") == 4 and tried == [1, 2, 4, 8]
    with pytest.raises(OutOfMemoryError, match="even the smallest"):
        largest_fitting([8, 16], fits, "x")
    assert np.isfinite(halved_batch(2, 1))
