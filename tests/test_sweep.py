"""Sweep files in Slideflow's format: the grid product, the round trip, every form of
``params`` and the errors for files that cannot be read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import jaxwsi
from jaxwsi.experiment.sweep import (
    SweepError,
    as_hp_dict,
    read_hp_sweep,
    sweep_grid,
    write_hp_sweep,
)
from jaxwsi.train.params import ModelParams


def test_grid_product_of_lists_except_epochs(tmp_path: Path) -> None:
    project = jaxwsi.create_project(tmp_path / "p")
    path = project.create_hp_sweep(
        "sweep.json",
        label="lr",
        tile_px=64,
        tile_um=64,
        epochs=[1, 3],
        learning_rate=[1e-3, 1e-4, 1e-5],
        dropout=[0.0, 0.5],
        model="resnet18",
    )
    assert path == project.root / "sweep.json"
    entries = json.loads(path.read_text())
    assert isinstance(entries, list) and all(len(e) == 1 for e in entries)
    names = [next(iter(e)) for e in entries]
    assert names == [f"lr-HPSweep{i}" for i in range(6)]
    values = [next(iter(e.values())) for e in entries]
    assert {(v["learning_rate"], v["dropout"]) for v in values} == {
        (lr, d) for lr in (1e-3, 1e-4, 1e-5) for d in (0.0, 0.5)
    }
    assert all(v["epochs"] == [1, 3] and v["model"] == "resnet18" for v in values)


def test_round_trip(tmp_path: Path) -> None:
    grid = sweep_grid(tile_px=64, tile_um=64, batch_size=[16, 32], optimizer=["Adam", "SGD"])
    path = write_hp_sweep(tmp_path / "s.json", grid)
    back = read_hp_sweep(path)
    assert list(back) == list(grid) == [f"HPSweep{i}" for i in range(4)]
    assert all(back[k].to_dict() == grid[k].to_dict() for k in grid)


def test_every_params_form(tmp_path: Path) -> None:
    a = ModelParams(tile_px=64, tile_um=64)
    b = ModelParams(tile_px=64, tile_um=64, learning_rate=1e-3)
    assert list(as_hp_dict(a)) == ["HP0"]
    assert list(as_hp_dict([a, b])) == ["HP0", "HP1"]
    assert as_hp_dict({"x": a})["x"] is a
    path = write_hp_sweep(tmp_path / "s.json", {"one": a, "two": b})
    assert as_hp_dict(str(path))["two"].learning_rate == 1e-3
    with pytest.raises(SweepError, match="ModelParams"):
        as_hp_dict([a, {"tile_px": 64}])
    with pytest.raises(SweepError, match="got int"):
        as_hp_dict(3)


@pytest.mark.parametrize(
    "text, match",
    [
        ("[{", "not valid JSON"),
        ("[]", "non-empty list"),
        ('[{"a": {}, "b": {}}]', "entry 0 must be a dict with one key"),
        ('[{"a": 3}]', "entry 0 .'a'.: params must be a JSON object"),
        ('[{"a": {"tile_px": 64}}, {"a": {"tile_px": 64}}]', "duplicate name 'a'"),
        ('[{"a": {"no_such_setting": 1}}]', "entry 0 .'a'.*no_such_setting"),
    ],
)
def test_unreadable_sweeps_name_the_file_and_entry(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(SweepError, match=match) as error:
        read_hp_sweep(path)
    assert str(path) in str(error.value)


def test_missing_sweep_file(tmp_path: Path) -> None:
    with pytest.raises(SweepError, match="not found"):
        read_hp_sweep(tmp_path / "nope.json")
    with pytest.raises(SweepError, match="empty list"):
        sweep_grid(tile_px=64, tile_um=64, dropout=[])
