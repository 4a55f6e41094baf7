"""SMAC search spaces and the ask/tell search loop (batches of trials, CSV outputs)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from ConfigSpace import (
    CategoricalHyperparameter,
    OrdinalHyperparameter,
    UniformFloatHyperparameter,
    UniformIntegerHyperparameter,
)

from jaxwsi.experiment.smac_search import run_smac
from jaxwsi.util import broad_search_space, create_search_space, shallow_search_space


def test_search_space_types_from_values() -> None:
    space = create_search_space(
        batch_size=[32, 8, 16],
        dropout=(0.0, 0.5),
        learning_rate=(1e-5, 1e-3),
        learning_rate_decay_steps=(128, 1024),
        model=["resnet18", "xception"],
        early_stop=True,
        normalizer=None,
    )
    hp = {h.name: h for h in space.values()}
    assert set(hp) == {
        "batch_size",
        "dropout",
        "learning_rate",
        "learning_rate_decay_steps",
        "model",
        "early_stop",
    }
    assert isinstance(hp["batch_size"], OrdinalHyperparameter)
    assert list(hp["batch_size"].sequence) == [8, 16, 32]
    assert isinstance(hp["dropout"], UniformFloatHyperparameter) and not hp["dropout"].log
    assert hp["learning_rate"].log
    assert isinstance(hp["learning_rate_decay_steps"], UniformIntegerHyperparameter)
    assert hp["learning_rate_decay_steps"].log
    assert isinstance(hp["model"], CategoricalHyperparameter)
    assert list(hp["early_stop"].choices) == [False, True]


def test_presets_match_slideflow_and_take_overrides() -> None:
    broad = broad_search_space(hidden_layers=None, model=["resnet18"])
    names = {h.name for h in broad.values()}
    assert "hidden_layers" not in names and "model" in names
    assert {"l1", "l1_dense", "learning_rate_decay"} <= names
    shallow = {h.name: h for h in shallow_search_space().values()}
    assert set(shallow) == {
        "batch_size",
        "dropout",
        "l2",
        "l2_dense",
        "learning_rate",
        "hidden_layers",
    }
    assert (shallow["learning_rate"].lower, shallow["learning_rate"].upper) == (5e-5, 5e-4)


@pytest.mark.parametrize(
    "bad, match",
    [({"lr": (1.0, 0.5)}, "low < high"), ({"x": []}, "empty list"), ({"y": (1, 2, 3)}, "range")],
)
def test_bad_ranges_name_the_setting(bad: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        create_search_space(**bad)


def test_search_finds_the_minimum_and_writes_csvs(tmp_path: Path) -> None:
    space = create_search_space(learning_rate=(1e-4, 1e-1), model=["good", "bad"])
    batches = []

    def evaluate(configs):
        batches.append(len(configs))
        return [
            (abs(math.log10(c["learning_rate"]) + 2) + (c["model"] == "bad"), {"n": i})
            for i, c in enumerate(configs)
        ]

    result = run_smac(space, evaluate, tmp_path, n_trials=12, parallel=3, seed=0)
    assert batches == [3, 3, 3, 3]
    assert len(result.history) == 12
    assert result.best["model"] == "good"
    assert result.best_cost == result.history["cost"].min()
    assert abs(math.log10(result.best["learning_rate"]) + 2) < 0.5
    saved = pd.read_csv(tmp_path / "run_history.csv")
    assert list(saved.columns) == ["trial", "learning_rate", "model", "cost", "n"]
    best = pd.read_csv(tmp_path / "best_config.csv")
    assert best.loc[0, "model"] == "good"
    # Same seed, same search.
    again = run_smac(space, evaluate, tmp_path / "again", n_trials=12, parallel=3, seed=0)
    pd.testing.assert_frame_equal(again.history, result.history)


def test_failed_trials_do_not_win(tmp_path: Path) -> None:
    space = create_search_space(x=(0.0, 1.0))
    result = run_smac(
        space,
        lambda configs: [(math.nan if c["x"] < 0.5 else c["x"], {}) for c in configs],
        tmp_path,
        n_trials=8,
        seed=1,
    )
    assert result.best["x"] >= 0.5


def test_project_search_of_a_few_trials_returns_a_valid_config(tmp_path: Path) -> None:
    from experiment_data import OUTCOME, TILE_PX, TILE_UM, make_project

    import jaxwsi

    project = make_project(tmp_path, num_patients=4, slides_per_patient=1)
    hp = jaxwsi.ModelParams(
        tile_px=TILE_PX,
        tile_um=TILE_UM,
        model="tiny_cnn",
        epochs=[1],
        batch_size=16,
        augment=None,
        pooling="avg",
    )
    space = create_search_space(learning_rate=(1e-4, 1e-2), hidden_layers=[0, 1])
    result = project.smac_search(
        OUTCOME,
        hp,
        space,
        smac_limit=3,
        smac_metric="slide_auc",
        val_strategy="fixed",
        val_fraction=0.5,
        trainer_options={"progress": False},
    )
    assert 1e-4 <= result.best["learning_rate"] <= 1e-2 and result.best["hidden_layers"] in (0, 1)
    assert len(result.history) == 3 and result.history["models"].tolist() == [1, 1, 1]
    assert (result.history["cost"] == 1 - result.history["metric"]).all()
    assert result.best_cost == result.history["cost"].min()
    folder = next(project.models_dir.glob("*-SMAC"))
    assert (folder / "run_history.csv").is_file() and (folder / "best_config.csv").is_file()
    trials = sorted(p.name for p in project.models_dir.glob("*-tissue-SMAC-trial*"))
    assert trials == [f"0000{i + 1}-tissue-SMAC-trial{i}-rep0" for i in range(3)]


def test_search_leaves_the_callers_logging_as_it_was(tmp_path: Path, caplog) -> None:
    import logging

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    space = create_search_space(x=(0.0, 1.0))
    run_smac(space, lambda configs: [(c["x"], {}) for c in configs], tmp_path, n_trials=2)
    assert (root.level, root.handlers) == (level, handlers)
    logging.getLogger("jaxwsi.dataset.splits").warning("still heard")
    assert "still heard" in caplog.text
