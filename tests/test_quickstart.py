"""The README's main job runs end to end and its own checks pass (small settings)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).parents[1] / "experiments"


def _load_quickstart():
    spec = importlib.util.spec_from_file_location("quickstart", EXPERIMENTS / "quickstart.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_runs_end_to_end(tmp_path: Path, capsys) -> None:
    quickstart = _load_quickstart()
    outdir = tmp_path / "quickstart"
    code = quickstart.main(
        [
            "--outdir",
            str(outdir),
            "--slides",
            "8",
            "--folds",
            "2",
            "--epochs",
            "2",
            "--workers",
            "0",
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "all checks passed" in printed
    # The project it made is a real one: TFRecords with indexes, splits, two fold models with
    # their files and reports, the results log and the stage timings.
    project = outdir / "project"
    tfrecords = sorted((project / "tfrecords" / "64px_128um").glob("*.tfrecords"))
    assert len(tfrecords) == 8
    assert all(Path(f"{p.with_suffix('')}.index.npz").is_file() for p in tfrecords)
    assert (project / "splits.json").stat().st_size > 2
    models = sorted(p.name for p in (project / "models").iterdir() if p.name[0].isdigit())
    assert models == ["00000-tissue-HP0-kfold1", "00001-tissue-HP0-kfold2"]
    for name in models:
        assert (project / "models" / name / "report.html").is_file()
        assert name in printed  # the metrics table
    assert len(list((project / "models" / models[0] / "heatmaps").glob("*.png"))) >= 2
    log = (project / "results_log.csv").read_text()
    assert all(name in log for name in models)
    assert "training (2 folds)" in (outdir / "timings.json").read_text()


def test_quickstart_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    quickstart = _load_quickstart()
    precious = tmp_path / "data"
    precious.mkdir()
    (precious / "slide.svs").write_bytes(b"not ours")
    with pytest.raises(SystemExit, match="was not made by the quickstart"):
        quickstart.main(["--outdir", str(precious)])
    assert (precious / "slide.svs").read_bytes() == b"not ours"
