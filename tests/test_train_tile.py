"""The tile trainer end to end on a synthetic two-class cohort (8 CPU devices): it learns,
writes Slideflow's files, and a rebuilt model folder predicts what the trainer predicted."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import jaxwsi
from jaxwsi.train.events import read_scalars
from tests.train_data import split, write_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return split(write_cohort(tmp_path_factory.mktemp("cohort")))


@pytest.fixture(scope="module")
def trained(cohort, tmp_path_factory):
    train, val = cohort
    outdir = tmp_path_factory.mktemp("model") / "00000-tissue-HP0"
    hp = jaxwsi.ModelParams(
        tile_px=32,
        tile_um=64,
        model="train_tiny",
        epochs=[1, 2],
        batch_size=16,
        learning_rate=1e-2,
        augment="xy",
        normalizer="reinhard",
    )
    trainer = jaxwsi.train.build_trainer(hp, outdir=outdir, labels="tissue", progress=False)
    return trainer, trainer.train(train, val), outdir


def test_learns_the_two_classes(trained):
    _, results, _ = trained
    assert sorted(results) == ["epoch1", "epoch2"]
    last = results["epoch2"]
    assert min(last["tile_auc"]["tissue"]) > 0.95
    assert last["slide_auc"]["tissue"] == [1.0, 1.0]
    assert last["patient_auc"]["tissue"] == [1.0, 1.0]
    assert last["val_metrics"]["loss"] < last["train_metrics"]["loss"] * 10
    assert last["accuracy"]["tissue"] > 0.9


def test_slideflow_files(trained, cohort):
    _, results, outdir = trained
    train, val = cohort
    tiles = pd.read_parquet(outdir / "tile_predictions_val_epoch2.parquet")
    assert list(tiles.columns) == [
        "slide",
        "loc_x",
        "loc_y",
        "tissue-y_true",
        "tissue-y_pred0",
        "tissue-y_pred1",
        "patient",
    ]
    assert len(tiles) == val.num_tiles and set(tiles.slide) == set(val.slides())
    np.testing.assert_allclose(tiles[["tissue-y_pred0", "tissue-y_pred1"]].sum(1), 1, rtol=1e-5)
    slides = pd.read_parquet(outdir / "slide_predictions_val_epoch2.parquet")
    mean = tiles.groupby("slide")["tissue-y_pred1"].mean()
    np.testing.assert_allclose(slides.set_index("slide")["tissue-y_pred1"], mean)
    assert (outdir / "patient_predictions_val_epoch1.parquet").is_file()
    assert (outdir / "val_epoch2_tissue_slide_ROC1.png").is_file()
    manifest = pd.read_csv(outdir / "slide_manifest.csv")
    assert set(manifest.dataset) == {"training", "validation"}
    assert len(manifest) == len(train) + len(val)
    params = json.loads((outdir / "params.json").read_text())
    assert params["hp"]["model"] == "train_tiny" and params["outcome_labels"] == {
        "tissue": ["stroma", "tumour"]
    }
    assert params["norm_fit"]["method"] == "reinhard" and params["model_type"] == "classification"
    log = pd.read_csv(outdir / "results_log.csv")
    assert list(log.epoch) == [1, 2] and "tile_auc-tissue" in log.columns
    scalars = read_scalars(outdir)
    assert "train/loss" in scalars or any(k.startswith("val/") for k in scalars)
    assert "val/tile_auc/tissue/1" in scalars


def test_load_trainer_predicts_like_the_trainer(trained, cohort, tmp_path):
    trainer, _, outdir = trained
    _, val = cohort
    rebuilt = jaxwsi.train.load_trainer(outdir)
    tables = rebuilt.predict(val, outdir=tmp_path)
    expected = pd.read_parquet(outdir / "tile_predictions_val_epoch2.parquet")
    np.testing.assert_allclose(
        tables["tile"]["tissue-y_pred1"], expected["tissue-y_pred1"], rtol=1e-5, atol=1e-6
    )
    assert (tmp_path / "slide_predictions.parquet").is_file()
    assert "tissue-y_true" not in tables["tile"]
    metrics = rebuilt.evaluate(val)
    assert metrics["slide_auc"]["tissue"] == [1.0, 1.0]
    assert (outdir / "tile_predictions_eval.parquet").is_file()


def test_existing_checkpoints_need_resume(trained, cohort):
    trainer, _, outdir = trained
    with pytest.raises(FileExistsError, match="resume=True"):
        jaxwsi.train.build_trainer(trainer.hp, outdir, "tissue", progress=False).train(*cohort)
