"""Pretrained backbones in the tile trainer: ``toplayer_epochs`` trains only the head on top of
the weights file, then everything; a finished model folder loads after the weights file is gone
(the checkpoint holds every weight)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import save_file

import jaxwsi
from jaxwsi import models
from jaxwsi.train.trainer import _head_only
from tests.test_weights import abstract, torch_state_dict
from tests.train_data import TrainTiny, split, write_cohort


class TorchTiny(TrainTiny):
    """`TrainTiny` whose weights load from a torch-layout state dict (``conv1.weight``, ...)."""

    weights_layout = "torch"


models.register("train_tiny_torch")(lambda **kwargs: TorchTiny(**kwargs))


def backbone_kernel(trainer) -> np.ndarray:
    return np.asarray(trainer.state.model().backbone.conv2.kernel[...])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    state = torch_state_dict(abstract(models.get("train_tiny_torch")), seed=1)
    path = root / "tiny.safetensors"
    save_file(state, str(path))
    return split(write_cohort(root / "cohort")), path, state["conv2.weight"].transpose(2, 3, 1, 0)


def _train(setup, outdir, epochs, toplayer_epochs=1):
    (train, val), path, _ = setup
    hp = jaxwsi.ModelParams(
        tile_px=32,
        tile_um=64,
        model="train_tiny_torch",
        pretrain=str(path),
        epochs=epochs,
        toplayer_epochs=toplayer_epochs,
        batch_size=16,
        learning_rate=1e-2,
    )
    trainer = jaxwsi.train.build_trainer(hp, outdir=outdir, labels="tissue", progress=False)
    trainer.train(train, val)
    return trainer


def test_toplayer_epochs_freeze_the_backbone_then_train_it(setup, tmp_path):
    _, _, pretrained = setup
    head_only = _train(setup, tmp_path / "a", [1])  # every epoch is a top-layer epoch
    np.testing.assert_array_equal(backbone_kernel(head_only), pretrained)
    switched = _train(setup, tmp_path / "b", [2])  # epoch 1 head only, epoch 2 everything
    assert not np.allclose(backbone_kernel(switched), pretrained)
    # Two full epochs move the backbone differently from one frozen and one full epoch.
    always = _train(setup, tmp_path / "c", [2], toplayer_epochs=0)
    assert not np.allclose(backbone_kernel(always), backbone_kernel(switched))


def test_model_folder_loads_without_the_pretrain_file(setup, tmp_path):
    """Also a run that ended inside its top-layer epochs (its optimizer is the head-only one)."""
    (_, val), path, _ = setup
    trainer = _train(setup, tmp_path / "m", [1])
    moved = path.with_suffix(".moved")
    path.rename(moved)
    try:
        rebuilt = jaxwsi.train.load_trainer(tmp_path / "m")
        tables = rebuilt.predict(val, outdir=tmp_path / "p")
    finally:
        moved.rename(path)
    expected = pd.read_parquet(tmp_path / "m" / "tile_predictions_val_epoch1.parquet")
    np.testing.assert_allclose(
        tables["tile"]["tissue-y_pred1"], expected["tissue-y_pred1"], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(backbone_kernel(rebuilt), backbone_kernel(trainer))


@pytest.mark.parametrize(
    ("toplayer", "epoch", "batch", "expected"),
    [(1, 0, 3, True), (1, 1, 0, True), (1, 1, 1, False), (1, 2, 0, False), (0, 0, 0, False)],
)
def test_which_optimizer_a_checkpoint_was_saved_with(toplayer, epoch, batch, expected):
    """The switch to the full optimizer comes before the first step of epoch ``toplayer``, so
    the checkpoint at the end of the last top-layer epoch still holds the head-only one."""
    hp = jaxwsi.ModelParams(epochs=[3], toplayer_epochs=toplayer)
    assert _head_only(hp, {"epoch": epoch, "batch": batch}) is expected
