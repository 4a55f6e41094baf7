"""Segmentation training on real nuclei crops: keep-N-best by validation loss, previews and
TensorBoard events, stop-asap on SIGINT and exact (bitwise) resume, pretrained weights, export
and the `jaxwsi segment` CLI."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import jax
import numpy as np
import pytest
import tifffile
import yaml
from PIL import Image

from jaxwsi.cli import main
from jaxwsi.segment import trainer
from jaxwsi.segment.config import config_from_dict
from jaxwsi.segment.saved import load_model
from jaxwsi.train.checkpoint import Checkpointer, CheckpointError, host_numpy
from jaxwsi.train.events import read_scalars

FIXTURES = Path(__file__).parent / "fixtures" / "segmentation"


@pytest.fixture(scope="module")
def datafolder(tmp_path_factory) -> Path:
    """Four 96×96 crops of the real nuclei image with their labels (input/, output/)."""
    root = tmp_path_factory.mktemp("nuclei")
    image = tifffile.imread(FIXTURES / "img2d.tif")
    mask = tifffile.imread(FIXTURES / "mask2d.tif")
    for i, (y, x) in enumerate([(0, 0), (0, 200), (200, 0), (300, 300)]):
        for folder, array in (("input", image), ("output", mask)):
            (root / folder).mkdir(exist_ok=True)
            tifffile.imwrite(root / folder / f"crop{i}.tif", array[y : y + 96, x : x + 96])
    return root


def settings(datafolder: Path, run: Path, **changes) -> dict:
    base = {
        "model": {"name": "unet2d", "depth": 2, "features": 4},
        "size_in": [32, 32],
        "checkpoint_dir": str(run),
        "loader": {
            "datafolder": str(datafolder),
            "batch_size": 8,
            "PatchPerBuffer": 16,
            "epoch_shuffle": 2,
        },
        "validation": {"leaveout": [3], "patches": 8, "preview": 2},
        "learning_rate": 0.01,
        "epochs": 3,
        "keep_n_best": 2,
        "seed": 5,
    }
    return {**base, **changes}


def interrupt_after(monkeypatch, calls: int) -> None:
    """Send this process a real SIGINT during training step number ``calls``."""
    real = trainer.make_train_step
    count = {"n": 0}

    def factory(*args, **kwargs):
        step = real(*args, **kwargs)

        def interrupted(state, batch):
            count["n"] += 1
            if count["n"] == calls:
                os.kill(os.getpid(), signal.SIGINT)
            return step(state, batch)

        return interrupted

    monkeypatch.setattr(trainer, "make_train_step", factory)


@pytest.fixture(scope="module")
def full_run(datafolder, tmp_path_factory):
    run = tmp_path_factory.mktemp("full") / "run"
    result = trainer.train(config_from_dict(settings(datafolder, run)))
    return run, result


def _leaves(run: Path, like):
    with Checkpointer(run / "checkpoints", async_save=False) as ckpt:
        state, extra = ckpt.restore(like)
        return ckpt.latest_step(), jax.tree.leaves(host_numpy(state)), extra


def _fresh_like(datafolder, run):
    config = config_from_dict(settings(datafolder, run))
    from jaxwsi.segment.saved import build_model
    from jaxwsi.train.state import TrainState

    return TrainState.create(build_model(config), trainer.make_tx(config), seed=config.seed)


def test_keep_n_best_and_export_best(full_run):
    run, result = full_run
    assert not result.stopped and result.epochs_done == 3 and result.step == 6  # 2 steps/epoch
    losses = {h["step"]: h["val_loss"] for h in result.history}
    assert len(losses) == 3
    best_two = sorted(losses, key=losses.get)[:2]
    kept = sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
    assert kept == sorted(set(best_two) | {result.step})  # N best by val loss + the latest
    assert result.exported_step == min(losses, key=losses.get)  # load_at_end: best
    assert load_model(run).step == result.exported_step


def test_previews_and_events(full_run):
    run, result = full_run
    previews = sorted(p.name for p in (run / "previews").iterdir())
    assert previews == ["epoch_0001.png", "epoch_0002.png", "epoch_0003.png"]
    picture = np.asarray(Image.open(run / "previews" / previews[0]))
    assert picture.shape == (2 * 32, 3 * 32) and picture.dtype == np.uint8  # 2 rows × 3 panels
    scalars = read_scalars(run / "logs")
    assert [v for _, v in scalars["val_loss"]] == pytest.approx(
        [h["val_loss"] for h in result.history]
    )
    assert {"train_loss", "train_iou", "val_dice", "batch_size"} <= set(scalars)


def test_stop_asap_then_exact_resume(full_run, datafolder, tmp_path, monkeypatch):
    """SIGINT in step 3 (epoch 2): the step finishes, a checkpoint is saved, train returns;
    resuming gives bitwise the state of the uninterrupted run."""
    run = tmp_path / "run"
    interrupt_after(monkeypatch, 3)
    stopped = trainer.train(config_from_dict(settings(datafolder, run)))
    assert stopped.stopped and stopped.step == 3 and stopped.epochs_done == 1
    assert stopped.exported_step is None and not (run / "model").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    monkeypatch.undo()
    resumed = trainer.train(config_from_dict(settings(datafolder, run, resume=str(run))))
    assert not resumed.stopped and resumed.step == 6 and resumed.epochs_done == 3
    like = _fresh_like(datafolder, run)
    step_a, leaves_a, _ = _leaves(full_run[0], like)
    step_b, leaves_b, _ = _leaves(run, like)
    assert step_a == step_b == 6
    assert all(np.array_equal(a, b) for a, b in zip(leaves_a, leaves_b, strict=True))
    assert resumed.history == full_run[1].history


def test_pretrained_via_cli_and_predict(full_run, datafolder, tmp_path, capsys):
    """`jaxwsi segment train` from the pretrained weights with learning rate 0 keeps them;
    `jaxwsi segment predict` writes float32 probabilities of each input's size."""
    source, _ = full_run
    run = tmp_path / "pre"
    config = settings(
        datafolder, run, pretrained=str(source), learning_rate=0.0, epochs=1, load_at_end="last"
    )
    path = tmp_path / "pre.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["segment", "train", str(path)]) == 0
    before, after = load_model(source), load_model(run)
    for a, b in zip(
        jax.tree.leaves(before.state.params), jax.tree.leaves(after.state.params), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    image = tifffile.imread(FIXTURES / "img2d.tif")[:70, :90]
    tifffile.imwrite(tmp_path / "a.tif", image)
    Image.fromarray((image // image.max() * 255).astype(np.uint8)).save(tmp_path / "b.png")
    out = tmp_path / "pred"
    args = ["segment", "predict", str(source), str(tmp_path / "a.tif"), str(tmp_path / "b.png")]
    assert main([*args, "--out", str(out), "--overlap", "0.5", "--tta"]) == 0
    for name in ("a.tif", "b.tif"):
        probability = tifffile.imread(out / name)
        assert probability.shape == (70, 90) and probability.dtype == np.float32
        assert probability.min() >= 0 and probability.max() <= 1
    assert "a.tif" in capsys.readouterr().out


def test_pretrained_of_another_architecture(full_run, datafolder, tmp_path):
    config = settings(
        datafolder,
        tmp_path / "x",
        pretrained=str(full_run[0]),
        model={"name": "unet2d", "depth": 2, "features": 8},
    )
    with pytest.raises(CheckpointError, match="different model"):
        trainer.train(config_from_dict(config))


def test_bad_sizes_and_splits(datafolder, tmp_path):
    with pytest.raises(ValueError, match=r"size_out: unet2d turns size_in \[32, 32\] into"):
        trainer.train(config_from_dict(settings(datafolder, tmp_path, size_out=[16, 16])))
    with pytest.raises(ValueError, match=r"size_in: \[34, 34\] does not fit unet2d"):
        trainer.train(config_from_dict(settings(datafolder, tmp_path, size_in=[34, 34])))
    with pytest.raises(ValueError, match=r"validation.leaveout: \[7\] out of range for 4"):
        trainer.train(
            config_from_dict(settings(datafolder, tmp_path, validation={"leaveout": [7]}))
        )
    with pytest.raises(ValueError, match="validation_split: 0.1 of 4 image"):
        trainer.train(
            config_from_dict(settings(datafolder, tmp_path, validation={}, validation_split=0.1))
        )
    if jax.device_count() > 1:
        n = jax.device_count()
        loader = {"datafolder": str(datafolder), "batch_size": n + 1}
        with pytest.raises(ValueError, match=f"batch_size: {n + 1} does not split over {n}"):
            trainer.train(config_from_dict(settings(datafolder, tmp_path, loader=loader)))


def test_pretrained_settings_keep_or_recompile(full_run, datafolder, tmp_path):
    """``keep`` takes optimizer, learning rate and loss from the pretrained model's settings;
    ``recompile`` (the default) uses the new ones."""
    changes = {
        "pretrained": str(full_run[0]),
        "optimizer": "sgd",
        "learning_rate": 0.5,
        "loss": {"name": "dice"},
    }
    keep = config_from_dict(settings(datafolder, tmp_path, pretrained_settings="keep", **changes))
    kept = trainer.with_pretrained_settings(keep)
    assert (kept.optimizer, kept.learning_rate, kept.loss.name) == ("adam", 0.01, "bce_jaccard")
    new = trainer.with_pretrained_settings(
        config_from_dict(settings(datafolder, tmp_path, **changes))
    )
    assert (new.optimizer, new.learning_rate, new.loss.name) == ("sgd", 0.5, "dice")
