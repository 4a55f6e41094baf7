"""MIL regression (Slideflow's ``loss`` mse / mae / huber): attention MIL learns a continuous
bag target, each loss by hand, two outcomes, Slideflow's files, the saved model through eval_mil,
predict_mil, predict_slide and the CLI, patient aggregation, determinism, and bad input."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from jaxwsi.mil import (
    BagError,
    MILConfigError,
    eval_mil,
    load_mil_model,
    mil_config,
    predict_mil,
    train_mil,
)
from jaxwsi.mil.config import LOSSES, REGRESSION_LOSSES
from jaxwsi.mil.data import mil_data
from jaxwsi.mil.predict import pearson_r
from jaxwsi.mil.steps import REGRESSION_LOSSES as LOSS_FNS
from jaxwsi.mil.steps import make_regression_loss_fn, regression_loss
from tests.mil_data import Tiny, key_value_bags, slide_cohort, write_cohort

# dropout 0.2 before the head, not attention_mil's 0.5: its noise on the raw outputs slows
# regression down (r ≈ 0.9 instead of ≈ 0.97 after these 12 epochs)
BASE = dict(lr=2e-3, epochs=12, batch_size=16, bag_size=32, loss="mse", dropout=0.2)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("milreg")
    bags, columns = key_value_bags(224)
    dataset, bag_dir = write_cohort(root, bags, columns=columns)
    slides = dataset.slides()
    return columns, dataset.with_slides(slides[:192]), dataset.with_slides(slides[192:]), bag_dir


@pytest.fixture(scope="module")
def trained(cohort, tmp_path_factory):
    """(run folder, validation predictions) of attention_mil on ``target`` with mse."""
    _, train, val, bag_dir = cohort
    outdir = tmp_path_factory.mktemp("regrun") / "run"
    frame = train_mil(
        mil_config("attention_mil", **BASE), train, val, "target", bag_dir, outdir, progress=False
    )
    return outdir, frame


def test_attention_mil_learns_a_continuous_bag_target(trained, cohort):
    columns, _, val, _ = cohort
    outdir, frame = trained
    assert list(frame.columns) == ["slide", "y_true0", "y_pred0"]
    np.testing.assert_allclose(
        frame["y_true0"], [columns["target"][s] for s in frame["slide"]], rtol=1e-6
    )
    assert sorted(frame["slide"]) == val.slides()
    assert pearson_r(frame["y_pred0"], frame["y_true0"]) >= 0.9  # held-out bags


def test_outputs_as_slideflow_writes_them(trained, cohort):
    _, train, val, _ = cohort
    outdir, frame = trained
    pd.testing.assert_frame_equal(pd.read_parquet(outdir / "predictions.parquet"), frame)
    params = json.loads((outdir / "mil_params.json").read_text())
    assert params["params"]["loss"] == "mse" and params["outcomes"] == ["target"]
    assert params["outcome_labels"] is None and params["output_shape"] == 1
    history = pd.read_csv(outdir / "history.csv")
    assert list(history.columns) == [
        "epoch", "train_loss", "valid_loss", "mse0", "pearson_r0", "seconds"
    ]  # fmt: skip
    assert len(history) == 12 and history["valid_loss"].iloc[-1] < history["valid_loss"].iloc[0]
    np.testing.assert_allclose(history["valid_loss"], history["mse0"], rtol=1e-5)  # mse loss
    # the kept model is the best by valid_loss: its predictions give the lowest mse
    best = history["valid_loss"].min()
    assert np.mean((frame["y_pred0"] - frame["y_true0"]) ** 2) == pytest.approx(best, rel=1e-4)
    manifest = pd.read_csv(outdir / "slide_manifest.csv")
    assert sorted(manifest["slide"]) == sorted(train.slides() + val.slides())
    assert np.isfinite(manifest["outcome_label"].astype(float)).all()


def test_eval_and_predict_from_the_saved_model(trained, cohort, tmp_path):
    _, _, val, bag_dir = cohort
    outdir, frame = trained
    _, params = load_mil_model(outdir)
    assert params["params"]["loss"] == "mse"
    evaluated = eval_mil(outdir, val, "target", bag_dir, tmp_path / "eval")
    pd.testing.assert_frame_equal(evaluated, frame, rtol=1e-5)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "eval" / "predictions.parquet"),
                                  evaluated)  # fmt: skip
    unknown, _, _ = predict_mil(outdir, val, bag_dir)  # no outcome: the truth is unknown
    assert unknown["y_true0"].isna().all()
    np.testing.assert_allclose(unknown["y_pred0"], frame["y_pred0"], rtol=1e-5)
    with_uq, _, _ = predict_mil(outdir, val, bag_dir, outcome="target", uq=True)
    assert {"y_pred0", "uncertainty0"} <= set(with_uq.columns)
    assert (with_uq["uncertainty0"] > 0).all()  # dropout (0.2) before the head
    # the MC mean is a raw value near the deterministic prediction (not a probability)
    assert pearson_r(with_uq["y_pred0"], frame["y_pred0"]) > 0.9
    with pytest.raises(MILConfigError, match=r"predicts 1 outcome.*\['target'\]"):
        predict_mil(outdir, val, bag_dir, outcome=["target", "target2"])


def test_each_loss_against_a_hand_computed_value():
    outputs = np.array([[0.5, 3.0], [-1.0, 2.0]], np.float32)
    targets = np.array([[0.0, 0.0], [0.0, 2.5]], np.float32)
    # errors 0.5, 3, -1, -0.5
    expected = {
        "mse": (0.25 + 9 + 1 + 0.25) / 4,
        "mae": (0.5 + 3 + 1 + 0.5) / 4,
        "huber": (0.125 + (3 - 0.5) + 0.5 + 0.125) / 4,  # 0.5 e² if |e| <= 1, else |e| - 0.5
    }
    assert set(LOSS_FNS) == set(REGRESSION_LOSSES) == set(LOSSES) - {"cross_entropy"}

    class Fixed:  # a model whose bag outputs are ``outputs``
        def __call__(self, bags, mask, *, rngs=None):
            return {"logits": jnp.asarray(outputs), "attention": mask.astype(jnp.float32)}

    for name, value in expected.items():
        assert float(regression_loss(name, outputs, targets)) == pytest.approx(value, rel=1e-6)
        batch = {"bags": jnp.zeros((2, 3, 4)), "mask": jnp.ones((2, 3), bool), "label": targets}
        loss, metrics = make_regression_loss_fn(name)(Fixed(), batch, jax.random.key(0))
        assert float(loss) == pytest.approx(value, rel=1e-6) == float(metrics["bag_loss"])


def test_two_outcomes_train_deterministically(cohort, tmp_path):
    columns, train, val, bag_dir = cohort
    train = train.with_slides(train.slides()[:64])
    config = mil_config("attention_mil", **{**BASE, "epochs": 2, "loss": "huber"})
    outcomes = ["target", "target2"]
    frame = train_mil(config, train, val, outcomes, bag_dir, tmp_path / "a", progress=False)
    assert list(frame.columns) == ["slide", "y_true0", "y_true1", "y_pred0", "y_pred1"]
    for i, outcome in enumerate(outcomes):
        np.testing.assert_allclose(
            frame[f"y_true{i}"], [columns[outcome][s] for s in frame["slide"]], rtol=1e-6
        )
    history = pd.read_csv(tmp_path / "a" / "history.csv")
    assert {"mse0", "mse1", "pearson_r0", "pearson_r1"} <= set(history.columns)
    params = json.loads((tmp_path / "a" / "mil_params.json").read_text())
    assert params["outcomes"] == outcomes and params["output_shape"] == 2
    again = train_mil(config, train, val, outcomes, bag_dir, tmp_path / "b", progress=False)
    pd.testing.assert_frame_equal(again, frame, check_exact=True)


def test_patient_level_regression(tmp_path):
    bags, columns = key_value_bags(24, seed=4)
    slides = sorted(bags)
    patients = {s: f"pt{i // 2:02d}" for i, s in enumerate(slides)}  # two slides each
    for s in slides:  # a patient's slides share the patient's value
        columns["target"][s] = float(int(patients[s][2:]))
    dataset, bag_dir = write_cohort(tmp_path, bags, patients=patients, columns=columns)
    data = mil_data(dataset, bag_dir, outcome="target", categories=None, level="patient")
    assert len(data) == 12 and data.labels.shape == (12, 1) and data.labels.dtype == np.float32
    np.testing.assert_array_equal(data.labels[:, 0], np.arange(12))
    train = dataset.with_slides([s for s in slides if patients[s] < "pt08"])
    val = dataset.with_slides([s for s in slides if patients[s] >= "pt08"])
    config = mil_config(
        "attention_mil", **{**BASE, "epochs": 1, "batch_size": 8, "aggregation_level": "patient"}
    )
    frame = train_mil(config, train, val, "target", bag_dir, tmp_path / "run", progress=False)
    assert list(frame.columns) == ["patient", "y_true0", "y_pred0"]
    assert list(frame["y_true0"]) == [8.0, 9.0, 10.0, 11.0]


def test_predict_slide_and_the_cli_train_a_regression_model(tmp_path):
    import shutil

    from jaxwsi.cli import main
    from jaxwsi.mil import predict_slide
    from jaxwsi.project import create_project

    slides, dataset = slide_cohort(tmp_path, "score", [0.5, 2.0])
    config = mil_config("attention_mil", epochs=1, batch_size=8, bag_size=16, loss="mae")
    train_mil(config, dataset, None, "score", tmp_path / "bags", tmp_path / "run", progress=False)
    from_bags, _, _ = predict_mil(tmp_path / "run", dataset, tmp_path / "bags")
    for i, slide in enumerate(slides):
        result = predict_slide(tmp_path / "run", slide, extractor=Tiny())
        assert result.categories == ["score"] and result.probs.shape == (1,)
        expected = from_bags.loc[from_bags["slide"] == f"slide{i}", "y_pred0"].item()
        assert result.probs[0] == pytest.approx(expected, rel=1e-4)

    # `jaxwsi mil train --loss mse`: cross-validation over an unstratified (continuous) split
    project = create_project(tmp_path / "proj", annotations=tmp_path / "ann.csv")
    shutil.copytree(tmp_path / "tiles" / "16px_64um", project.tfrecord_dir(16, 64))
    code = main(["mil", "train", str(project.root), "--tile-px", "16", "--tile-um", "64",
                 "--outcome", "score", "--bags", str(tmp_path / "bags"), "--k-fold", "2",
                 "--loss", "mse", "--epochs", "1", "--batch-size", "1"])  # fmt: skip
    assert code == 0
    run = project.root / "models" / "mil" / "00000-attention_mil-score"
    for fold in ("fold1", "fold2"):
        params = json.loads((run / fold / "mil_params.json").read_text())
        assert params["params"]["loss"] == "mse" and params["outcomes"] == ["score"]
        assert list(pd.read_parquet(run / fold / "predictions.parquet").columns) == [
            "slide", "y_true0", "y_pred0"
        ]  # fmt: skip
    with pytest.raises(SystemExit):  # argparse names the choices
        main(["mil", "train", str(project.root), "--tile-px", "16", "--tile-um", "64",
              "--outcome", "score", "--bags", str(tmp_path / "bags"), "--loss", "l1"])  # fmt: skip


@pytest.mark.parametrize(("value", "shown"), [("abc", "'abc'"), ("nan", "'nan'"), ("inf", "'inf'")])
def test_bad_targets_name_the_slide_and_column(value, shown, tmp_path):
    bags, _ = key_value_bags(4, seed=1)
    values = {s: 1.0 for s in bags} | {"s002": value}
    dataset, bag_dir = write_cohort(tmp_path, bags, columns={"target": values})
    with pytest.raises(BagError, match=rf"'target'.*slide s002 has {shown}"):
        mil_data(dataset, bag_dir, outcome="target", categories=None)


def test_bad_settings_give_clear_errors(cohort, tmp_path):
    _, train, val, bag_dir = cohort
    with pytest.raises(MILConfigError, match=r"loss must be one of \['cross_entropy', 'mse'"):
        mil_config("attention_mil", loss="l1")
    with pytest.raises(MILConfigError, match="save_monitor 'roc_auc'.*regression"):
        mil_config("attention_mil", loss="mse", save_monitor="roc_auc")
    for model in ("clam_sb", "clam_mb", "mil_fc"):
        with pytest.raises(MILConfigError, match=f"{model}.*classification-only.*'mse'"):
            train_mil(
                mil_config(model, loss="mse"), train, val, "target", bag_dir, tmp_path / model
            )
    with pytest.raises(MILConfigError, match=r"one categorical outcome, got \['label', 'target'\]"):
        train_mil(mil_config("attention_mil"), train, val, ["label", "target"], bag_dir,
                  tmp_path / "two")  # fmt: skip
    with pytest.raises(BagError, match="regression outcome 'label'.*slide s000 has 'neg'"):
        train_mil(mil_config("attention_mil", loss="mse"), train, val, "label", bag_dir,
                  tmp_path / "cat")  # fmt: skip


def test_blank_targets_are_refused(tmp_path):
    bags, _ = key_value_bags(3, seed=2)
    dataset, bag_dir = write_cohort(tmp_path, bags, columns={"target": {"s000": 1.0, "s001": "",
                                                                       "s002": 2.0}})  # fmt: skip
    with pytest.raises(BagError, match=r"regression outcome 'target'.*blank.*s001"):
        mil_data(dataset, bag_dir, outcome="target", categories=None)
