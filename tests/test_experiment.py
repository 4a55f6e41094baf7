"""Project.train end to end on a tiny synthetic project: a 3-fold plan's files and columns,
evaluation reproducing the saved validation metrics, heatmaps + report, resume of an
interrupted plan, and the errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from experiment_data import HP, OUTCOME, QUIET, TILE_PX, TILE_UM, make_project

import jaxwsi
import jaxwsi.train.trainer as trainer_module
from jaxwsi.dataset.errors import DatasetError
from jaxwsi.experiment.evaluate import ModelFolderError
from jaxwsi.experiment.runner import TrainingStopped
from jaxwsi.experiment.sweep import SweepError
from jaxwsi.train.stop import StopRequest


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> jaxwsi.Project:
    return make_project(tmp_path_factory.mktemp("experiment"))


@pytest.fixture(scope="module")
def trained(project) -> dict:
    return project.train(OUTCOME, jaxwsi.ModelParams(**HP), val_k_fold=3, **QUIET)


def test_three_fold_plan_writes_every_file(project, trained) -> None:
    names = list(trained)
    assert names == [f"0000{k - 1}-tissue-HP0-kfold{k}" for k in (1, 2, 3)]
    validated = []
    for name in names:
        folder = project.models_dir / name
        for file in ("params.json", "slide_manifest.csv", "results_log.csv", "results.json"):
            assert (folder / file).is_file(), file
        assert any((folder / "checkpoints").iterdir())
        params = json.loads((folder / "params.json").read_text())
        assert params["outcomes"] == [OUTCOME] and params["validation_k_fold"] == 3
        assert params["k_fold_i"] == int(name[-1]) and params["hp"]["model"] == "tiny_cnn"
        manifest = pd.read_csv(folder / "slide_manifest.csv")
        assert list(manifest.columns) == ["slide", "dataset", "outcome_label"]
        sides = {d: {s.split("_")[0] for s in g} for d, g in manifest.groupby("dataset")["slide"]}
        assert not sides["training"] & sides["validation"]  # patient-level
        validated += sorted(manifest.loc[manifest["dataset"] == "validation", "slide"])
        tiles = pd.read_parquet(folder / "tile_predictions_val_epoch2.parquet")
        assert {
            "slide",
            "loc_x",
            "loc_y",
            "tissue-y_pred0",
            "tissue-y_pred1",
            "tissue-y_true",
            "patient",
        } <= set(tiles.columns)
        for level in ("slide", "patient"):
            table = pd.read_parquet(folder / f"{level}_predictions_val_epoch2.parquet")
            assert {"tissue-y_pred0", "tissue-y_true", level} <= set(table.columns)
        metrics = trained[name]["epoch2"]
        assert np.mean(metrics["slide_auc"][OUTCOME]) == 1.0  # the two classes were learned
        assert np.mean(metrics["tile_auc"][OUTCOME]) > 0.95
    assert sorted(validated) == sorted(project.dataset(TILE_PX, TILE_UM).slides())
    log = pd.read_csv(project.root / "results_log.csv")
    assert log["model_name"].tolist() == names and set(log["epoch"]) == {2}
    assert {"tile_auc-tissue", "slide_auc-tissue", "patient_auc-tissue"} <= set(log.columns)


def test_evaluate_reproduces_the_validation_metrics(project, trained) -> None:
    name = next(iter(trained))
    folder = project.models_dir / name
    manifest = pd.read_csv(folder / "slide_manifest.csv")
    validation = manifest.loc[manifest["dataset"] == "validation", "slide"].tolist()
    metrics = project.evaluate(name, OUTCOME, filters={"slide": validation})
    saved = trained[name]["epoch2"]
    for key in ("tile_auc", "slide_auc", "patient_auc", "tile_ap"):
        np.testing.assert_allclose(metrics[key][OUTCOME], saved[key][OUTCOME], atol=1e-6)
    np.testing.assert_allclose(
        metrics["val_metrics"]["loss"], saved["val_metrics"]["loss"], rtol=1e-5
    )
    for level in ("tile", "slide", "patient"):
        evaluated = pd.read_parquet(folder / f"{level}_predictions_eval.parquet")
        during = pd.read_parquet(folder / f"{level}_predictions_val_epoch2.parquet")
        assert len(evaluated) == len(during)
    predicted = project.predict(name, filters={"slide": validation[:1]})
    assert [p.name for p in predicted] == [
        "tile_predictions.parquet",
        "slide_predictions.parquet",
        "patient_predictions.parquet",
    ]
    assert set(pd.read_parquet(predicted[1])["slide"]) == {validation[0]}


def test_heatmaps_and_report(project, trained) -> None:
    name = next(iter(trained))
    paths = project.generate_heatmaps(name, filters={"patient": ["p0"]})
    assert sorted(p.name for p in paths) == [
        f"p0_s{s}-tissue-{c}.png" for s in (0, 1) for c in ("stroma", "tumour")
    ]
    page = (project.models_dir / name / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 6 and "slide_auc-tissue" in page


class _StopAfter(StopRequest):
    """Ctrl-C as the trainer's signal handler sees it, arriving at the ``after``-th step of the
    whole plan (counted where the loop checks for it: once per step), so deterministic."""

    checks = 0
    after = 0

    @property
    def requested(self) -> bool:  # type: ignore[override]
        type(self).checks += 1
        if type(self).checks == type(self).after:
            self.signal_name = "SIGINT"
            return True
        return False

    @requested.setter
    def requested(self, value: bool) -> None:
        pass


def _steps_of_one_fold(project, trained) -> int:
    """Training steps of fold 1 of the uninterrupted run (its last checkpoint's step)."""
    folder = project.models_dir / next(iter(trained))
    return max(int(p.name) for p in (folder / "checkpoints").iterdir() if p.name.isdigit())


def test_interrupted_plan_resumes_and_matches_an_uninterrupted_one(
    project, trained, monkeypatch
) -> None:
    hp = jaxwsi.ModelParams(**HP)
    plan = dict(val_k_fold=3, val_k=[1, 2], **QUIET)
    # Fold 1 runs to its end; fold 2 is stopped by a Ctrl-C at its 3rd step.
    _StopAfter.checks, _StopAfter.after = 0, _steps_of_one_fold(project, trained) + 3
    with monkeypatch.context() as patch:
        patch.setattr(trainer_module, "StopRequest", _StopAfter)
        with pytest.raises(TrainingStopped, match="resume=True"):
            project.train(OUTCOME, hp, **plan)
    folds = sorted(p for p in project.models_dir.iterdir() if p.name[:5] in ("00003", "00004"))
    assert [p.name for p in folds] == ["00003-tissue-HP0-kfold1", "00004-tissue-HP0-kfold2"]
    assert (folds[0] / "results.json").is_file() and not (folds[1] / "results.json").exists()
    kept = (folds[0] / "results.json").stat().st_mtime_ns
    resumed = project.train(OUTCOME, hp, resume=True, **plan)
    assert list(resumed) == [p.name for p in folds]  # the same folders, no new ones
    assert (folds[0] / "results.json").stat().st_mtime_ns == kept  # fold 1 not retrained
    # Exactly resumed training: the metrics of the uninterrupted run of these folds.
    for got, want in zip(resumed.values(), list(trained.values())[:2], strict=True):
        assert got == want


def test_bad_inputs_name_what_is_wrong(project, trained, tmp_path) -> None:
    hp = jaxwsi.ModelParams(**HP)
    with pytest.raises(DatasetError, match=r"unknown outcome column\(s\) \['tisue'\]"):
        project.train("tisue", hp, **QUIET)
    with pytest.raises(DatasetError, match="no slides left .* after filters"):
        project.train(OUTCOME, hp, filters={"tissue": ["necrosis"]}, **QUIET)
    bad = tmp_path / "sweep.json"
    bad.write_text("[{'not': json}]")
    with pytest.raises(SweepError, match=f"{bad}: not valid JSON"):
        project.train(OUTCOME, str(bad), **QUIET)
    empty = project.models_dir / "00099-tissue-HP0"
    empty.mkdir()
    (empty / "params.json").write_text("{}")
    with pytest.raises(ModelFolderError, match="00099-tissue-HP0 has no checkpoint"):
        project.evaluate(empty, OUTCOME)
    with pytest.raises(ModelFolderError, match="model folder not found: nope"):
        project.evaluate("nope", OUTCOME)
    with pytest.raises(
        DatasetError, match=r"trained for outcome\(s\) \['tissue'\], not \['score'\]"
    ):
        project.evaluate(next(iter(trained)), "score")


def test_cli_train_evaluate_predict_heatmap(project, trained, tmp_path, capsys) -> None:
    from jaxwsi.cli import main

    config = tmp_path / "train.yaml"
    config.write_text(
        f"project: {project.root}\nimports: [{Path(__file__).parent / 'experiment_data.py'}]\n"
        f"outcomes: tissue\nval_k_fold: 3\nval_k: 3\n"
        f"trainer_options: {{progress: false}}\nparams:\n"
        + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in {**HP, "epochs": [1]}.items())
    )
    assert main(["train", str(config), "--no-report"]) == 0
    out = capsys.readouterr().out
    assert "tissue-HP0-kfold3" in out and "slide_auc" in out
    model = next(iter(trained))
    assert main(["evaluate", str(project.root), model, "--filter", "patient=p0"]) == 0
    assert "slide_auc" in capsys.readouterr().out
    assert main(["predict", str(project.root), model, "--out", str(tmp_path / "pred")]) == 0
    assert (tmp_path / "pred" / "slide_predictions.parquet").is_file()
    assert (
        main(
            [
                "heatmap",
                str(project.root),
                model,
                "--filter",
                "slide=p1_s0",
                "--outdir",
                str(tmp_path / "maps"),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "maps").glob("*.png")) == [
        "p1_s0-tissue-stroma.png",
        "p1_s0-tissue-tumour.png",
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"project: {project.root}\noutcomes: tissue\nparams: {{}}\nval_kfold: 3\n")
    assert main(["train", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "unknown key 'val_kfold'" in err and "val_k_fold" in err
