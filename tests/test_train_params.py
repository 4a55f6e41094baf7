"""ModelParams: Slideflow's defaults, the JSON round trip, and every validation error."""

from __future__ import annotations

import json

import pytest

import jaxwsi
from jaxwsi.train.params import ModelParams, ModelParamsError


def test_defaults_are_slideflows():
    hp = ModelParams()
    assert (hp.tile_px, hp.tile_um, hp.epochs, hp.model, hp.pooling) == (
        299,
        302,
        [3],
        "xception",
        "max",
    )
    assert (hp.learning_rate, hp.batch_size, hp.optimizer, hp.augment) == (1e-4, 16, "Adam", "xyrj")
    assert hp.loss == "sparse_categorical_crossentropy" and hp.training_balance == "auto"
    assert hp.pretrain is None and hp.dtype == "auto"
    assert jaxwsi.ModelParams is ModelParams


def test_json_round_trip():
    hp = ModelParams(tile_px=64, tile_um="10x", epochs=[1, 3], loss="MSE", dropout=0.2, uq=True)
    again = ModelParams.from_dict(json.loads(json.dumps(hp.to_dict())))
    assert again == hp and again.to_dict() == hp.to_dict()


def test_unknown_keys_are_named():
    with pytest.raises(ModelParamsError, match=r"\['bogus', 'lr'\]"):
        ModelParams.from_dict({"lr": 1, "bogus": 2, "tile_px": 64})


def custom_loss(outputs, labels, events):
    return (outputs[:, 0] - labels).mean()


def test_custom_loss_round_trip_and_type():
    hp = ModelParams(loss={"type": "regression", "fn": custom_loss})
    assert hp.model_type() == "regression"
    saved = hp.to_dict()
    assert saved["loss"]["fn"] == f"{__name__}:custom_loss"
    assert ModelParams.from_dict(saved).loss_fn() is custom_loss


def test_model_type():
    assert ModelParams().model_type() == "classification"
    assert ModelParams(loss="CrossEntropy").model_type() == "classification"
    assert ModelParams(loss="mean_squared_error").model_type() == "regression"
    assert ModelParams(loss="negative_log_likelihood").model_type() == "survival"


BAD = [
    ("tile_px", 0, "an integer >= 1"),
    ("tile_um", "ten", "magnification"),
    ("epochs", [3, 1], "increasing list"),
    ("epochs", [0], "increasing list"),
    ("toplayer_epochs", 5, "at most the number of epochs"),
    ("model", "", "registered tile model"),
    ("pooling", "mean", "one of max, avg, none"),
    ("loss", "focal", "one of sparse_categorical_crossentropy"),
    ("loss", {"type": "other", "fn": custom_loss}, "custom loss"),
    ("learning_rate", 0, "a number > 0"),
    ("learning_rate_decay", 1.5, r"\[0, 1\]"),
    ("learning_rate_decay_steps", 0, "an integer >= 1"),
    ("batch_size", 0, "an integer >= 1"),
    ("hidden_layers", -1, "an integer >= 0"),
    ("hidden_layer_width", 0, "an integer >= 1"),
    ("optimizer", "lbfgs", "one of adam, adamw, sgd"),
    ("early_stop", "yes", "True or False"),
    ("early_stop_patience", -1, "an integer >= 0"),
    ("early_stop_method", "auc", "one of loss, accuracy, manual"),
    ("manual_early_stop_epoch", 1.5, "None or an integer"),
    ("manual_early_stop_batch", "x", "None or an integer"),
    ("training_balance", "site", "one of auto, tile"),
    ("validation_balance", "site", "one of auto, tile"),
    ("trainable_layers", -2, "an integer >= 0"),
    ("l1", -0.1, r"\[0, 1\]"),
    ("l2", 2, r"\[0, 1\]"),
    ("l1_dense", -1, r"\[0, 1\]"),
    ("l2_dense", 1.1, r"\[0, 1\]"),
    ("dropout", 1.0, r"\[0, 1\)"),
    ("uq", 1, "True or False"),
    ("augment", "xyz", "letters 'xyrjbn'"),
    ("normalizer", "stainy", "one of"),
    ("normalizer_source", 3, "image file"),
    ("include_top", None, "True or False"),
    ("drop_images", "no", "True or False"),
    ("dtype", "float16", "one of auto, float32, bfloat16"),
    ("pretrain", "imagenet", "nothing can be downloaded"),
    ("pretrain", 3, "safetensors"),
    ("seed", -1, "an integer >= 0"),
]


@pytest.mark.parametrize(("field", "value", "allowed"), BAD, ids=[f"{b[0]}={b[1]!r}" for b in BAD])
def test_validation_errors_name_field_value_and_allowed(field, value, allowed):
    with pytest.raises(ModelParamsError, match=allowed) as err:
        ModelParams(**{field: value})
    assert f"ModelParams.{field} = {value!r}" in str(err.value)


def test_combination_errors():
    with pytest.raises(ModelParamsError, match="uq = True.*dropout > 0"):
        ModelParams(uq=True)
    with pytest.raises(ModelParamsError, match="'category' only with a classification loss"):
        ModelParams(loss="MSE", training_balance="category")
    with pytest.raises(ModelParamsError, match="manual_early_stop_epoch = None"):
        ModelParams(early_stop=True, early_stop_method="manual", manual_early_stop_batch=3)


def test_normalizer_and_dtype():
    assert ModelParams().get_normalizer() is None
    assert ModelParams(normalizer="reinhard").get_normalizer().method == "reinhard"
    assert str(ModelParams().compute_dtype()) == "float32"  # CPU
    assert str(ModelParams(dtype="bfloat16").compute_dtype()) == "bfloat16"
