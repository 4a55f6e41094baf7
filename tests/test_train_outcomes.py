"""The tile trainer on every outcome type and model input (8 CPU devices, tiny models, one or two
epochs): regression, Cox survival, several outcomes, clinical inputs with and without images,
a custom loss, head-only epochs, Monte-Carlo dropout."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest
from lifelines.utils import concordance_index

import jaxwsi
from jaxwsi.train.checkpoint import host_numpy
from tests.train_data import split, write_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    dataset = write_cohort(tmp_path_factory.mktemp("cohort"), tiles_per_slide=12)
    return (dataset, *split(dataset))


def params(**changes):
    base = dict(
        tile_px=32,
        tile_um=64,
        model="train_tiny",
        epochs=2,
        batch_size=16,
        learning_rate=1e-2,
        augment=None,
    )
    return jaxwsi.ModelParams(**{**base, **changes})


def train(hp, outdir, labels, train_ds, val_ds, **options):
    trainer = jaxwsi.train.build_trainer(hp, outdir, labels, progress=False, **options)
    return trainer, trainer.train(train_ds, val_ds)


def test_regression(cohort, tmp_path):
    _, train_ds, val_ds = cohort
    hp = params(loss="mean_squared_error", learning_rate=3e-2)
    _, results = train(hp, tmp_path, "score", train_ds, val_ds)
    last = results["epoch2"]
    assert last["tile_r_squared"]["score"] > 0.5 and last["slide_r_squared"]["score"] > 0.5
    tiles = pd.read_parquet(tmp_path / "tile_predictions_val_epoch2.parquet")
    assert {"score-y_true", "score-y_pred0"} <= set(tiles.columns)


def test_cox_survival(cohort, tmp_path):
    dataset, train_ds, _ = cohort
    hp = params(loss="negative_log_likelihood")
    trainer, results = train(hp, tmp_path, "time", train_ds, None, event_header="event")
    metrics = trainer.evaluate(train_ds)  # the training patients have comparable pairs
    # Images show the class, not the patient: the best possible ranking is by class.
    table = dataset.annotations.set_index("slide").loc[train_ds.slides()]
    best = concordance_index(table["time"], -(table["tissue"] == "tumour"), table["event"])
    assert metrics["slide_c_index"]["time"] > best - 0.1 and metrics["tile_c_index"]["time"] > 0.7
    tiles = pd.read_parquet(tmp_path / "tile_predictions_eval.parquet")
    assert {"time-y_true", "time-y_pred0", "event-y_true"} <= set(tiles.columns)
    with pytest.raises(jaxwsi.dataset.DatasetError, match="event_header"):
        train(hp, tmp_path / "no-event", "time", train_ds, None)


def test_multiple_outcomes(cohort, tmp_path):
    _, train_ds, val_ds = cohort
    _, results = train(params(epochs=1), tmp_path, ["tissue", "site"], train_ds, val_ds)
    last = results["epoch1"]
    assert set(last["tile_auc"]) == {"tissue", "site"} and len(last["tile_auc"]["site"]) == 3
    assert min(last["slide_auc"]["tissue"]) == 1.0
    tiles = pd.read_parquet(tmp_path / "tile_predictions_val_epoch1.parquet")
    assert {"tissue-y_pred1", "site-y_pred2", "site-y_true"} <= set(tiles.columns)


def test_clinical_inputs_without_images(cohort, tmp_path):
    """drop_images: the model sees only the clinical input, which carries the class."""
    _, train_ds, val_ds = cohort
    hp = params(drop_images=True, learning_rate=0.1, epochs=[6])
    _, results = train(hp, tmp_path, "tissue", train_ds, val_ds, input_header="marker")
    assert results["epoch6"]["slide_auc"]["tissue"] == [1.0, 1.0]
    assert results["epoch6"]["accuracy"]["tissue"] == 1.0


def test_clinical_inputs_with_images_and_uq(cohort, tmp_path):
    _, train_ds, val_ds = cohort
    hp = params(epochs=1, dropout=0.5, uq=True)
    trainer, results = train(
        hp, tmp_path, "tissue", train_ds, val_ds, input_header=["marker", "site"], uq_samples=4
    )
    assert trainer.targets.input_feature_sizes == [1, 3]
    tiles = pd.read_parquet(tmp_path / "tile_predictions_val_epoch1.parquet")
    assert (tiles["tissue-uncertainty1"] > 0).all()  # dropout draws differ
    assert results["epoch1"]["tile_auc"]["tissue"][1] > 0.9


def focal_loss(outputs, labels, events):
    """A custom classification loss (focal, γ = 2)."""
    del events
    logp = jax.nn.log_softmax(outputs)
    picked = jnp.take_along_axis(logp, labels.astype(jnp.int32)[:, None], axis=1)[:, 0]
    return jnp.mean(-((1 - jnp.exp(picked)) ** 2) * picked)


def test_custom_loss(cohort, tmp_path):
    _, train_ds, val_ds = cohort
    hp = params(loss={"type": "classification", "fn": focal_loss})
    _, results = train(hp, tmp_path, "tissue", train_ds, val_ds)
    assert results["epoch2"]["slide_auc"]["tissue"] == [1.0, 1.0]
    loaded = jaxwsi.train.load_trainer(tmp_path)
    assert loaded.hp.loss_fn() is focal_loss


def test_head_only_epochs_freeze_the_backbone(cohort, tmp_path):
    _, train_ds, _ = cohort
    hp = params(epochs=1, toplayer_epochs=1, l2=0.1, l2_dense=0.1)
    trainer, _ = train(hp, tmp_path, "tissue", train_ds, None)
    initial = host_numpy(trainer._initial_state(head_only=True).params)
    final = host_numpy(trainer.state.params)
    np.testing.assert_array_equal(
        final["backbone"]["conv1"]["kernel"], initial["backbone"]["conv1"]["kernel"]
    )
    assert not np.array_equal(final["heads"][0]["kernel"], initial["heads"][0]["kernel"])
    assert isinstance(
        trainer._optimizer(trainer.state.model(), False), optax.GradientTransformation
    )


def test_manual_early_stop(cohort, tmp_path):
    _, train_ds, val_ds = cohort
    hp = params(
        epochs=3,
        early_stop=True,
        early_stop_method="manual",
        manual_early_stop_epoch=2,
        manual_early_stop_batch=1,
    )
    trainer, results = train(hp, tmp_path, "tissue", train_ds, val_ds, save_predictions=False)
    steps_per_epoch = train_ds.num_tiles // hp.batch_size
    assert int(trainer.state.step) == steps_per_epoch + 1
    assert sorted(results) == ["epoch2"]  # evaluated where it stopped


def test_sigterm_saves_and_resume_finishes_the_same(cohort, tmp_path, monkeypatch):
    """SIGTERM during step 3: the step finishes, a checkpoint is saved, train returns {}; the
    resumed run ends with the weights of an uninterrupted one."""
    import os
    import signal

    import jaxwsi.train.trainer as trainer_module

    _, train_ds, _ = cohort
    hp = params(dropout=0.2, augment="xy")
    whole, _ = train(hp, tmp_path / "whole", "tissue", train_ds, None)

    original = trainer_module.make_train_step

    def signalling(*args, **kwargs):
        step = original(*args, **kwargs)
        calls = [0]

        def wrapped(state, batch):
            calls[0] += 1
            if calls[0] == 3:
                os.kill(os.getpid(), signal.SIGTERM)
            return step(state, batch)

        return wrapped

    monkeypatch.setattr(trainer_module, "make_train_step", signalling)
    stopped, results = train(hp, tmp_path / "stopped", "tissue", train_ds, None)
    assert results == {}
    monkeypatch.setattr(trainer_module, "make_train_step", original)
    resumed = jaxwsi.train.build_trainer(hp, tmp_path / "stopped", "tissue", progress=False)
    assert "epoch2" in resumed.train(train_ds, None, resume=True)
    for a, b in zip(
        jax.tree.leaves(host_numpy(whole.state.params)),
        jax.tree.leaves(host_numpy(resumed.state.params)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
