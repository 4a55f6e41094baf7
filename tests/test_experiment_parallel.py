"""Trials of a sweep run in parallel processes (one CPU device each, submitit's LocalExecutor)
give exactly the results of the same trials run one after another."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from experiment_data import OUTCOME, TILE_PX, TILE_UM, make_project

import jaxwsi

HELPERS = str(Path(__file__).parent / "experiment_data.py")  # registers tiny_cnn in trials
HP = dict(
    tile_px=TILE_PX,
    tile_um=TILE_UM,
    model="tiny_cnn",
    epochs=[1],
    batch_size=16,
    augment=None,
    pooling="avg",
)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> jaxwsi.Project:
    return make_project(tmp_path_factory.mktemp("parallel"), num_patients=4, slides_per_patient=1)


def test_parallel_trials_equal_sequential_ones(project, monkeypatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    sweep = {
        "lr3": jaxwsi.ModelParams(**HP, learning_rate=1e-3),
        "lr2": jaxwsi.ModelParams(**HP, learning_rate=1e-2),
    }
    common = dict(
        val_strategy="fixed",
        val_fraction=0.5,
        executor="local",
        imports=[HELPERS],
        trainer_options={"progress": False},
    )
    parallel = project.train(OUTCOME, sweep, parallel=2, **common)
    sequential = project.train(OUTCOME, sweep, parallel=1, **common)
    assert list(parallel) == ["00000-tissue-lr3", "00001-tissue-lr2"]
    assert list(sequential) == ["00002-tissue-lr3", "00003-tissue-lr2"]
    assert list(parallel.values()) == list(sequential.values())
    log = pd.read_csv(project.root / "results_log.csv")
    assert log["model_name"].tolist() == [*parallel, *sequential]
    logs = list((project.models_dir / "submitit").rglob("*_log.out"))
    assert len(logs) == 4  # each trial ran in its own process
