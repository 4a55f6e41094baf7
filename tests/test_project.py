"""Project folders: creation, loading, settings, and bad input."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

import jaxwsi
from jaxwsi.cli import main
from jaxwsi.dataset.errors import AnnotationError, DatasetError
from jaxwsi.project_settings import ProjectError
from jaxwsi.slide import tile_size_label
from jaxwsi.testing import synthetic_slide

ANNOTATIONS = pd.DataFrame(
    {"patient": ["P1", "P2"], "slide": ["slide_a", "slide_b"], "label": ["x", "y"]}
)


def test_create_project_makes_the_folder_layout(tmp_path):
    slides = tmp_path / "slides"
    slides.mkdir()
    project = jaxwsi.create_project(tmp_path / "proj", annotations=ANNOTATIONS, slides=slides)
    root = tmp_path / "proj"
    assert sorted(p.name for p in root.iterdir()) == [
        "annotations.csv",
        "models",
        "settings.json",
        "splits.json",
        "tfrecords",
    ]
    settings = json.loads((root / "settings.json").read_text())
    assert settings == {
        "name": "proj",
        "annotations": "./annotations.csv",
        "slides": str(slides.resolve()),
        "tfrecords": "./tfrecords",
        "models": "./models",
    }
    assert json.loads((root / "splits.json").read_text()) == []
    assert project.slides_dir == slides.resolve()
    assert project.tfrecords_dir == root / "tfrecords"
    assert project.models_dir == root / "models"
    pd.testing.assert_frame_equal(project.annotations(), ANNOTATIONS, check_dtype=False)


def test_load_project_reads_what_create_wrote(tmp_path):
    csv = tmp_path / "in.csv"
    ANNOTATIONS.to_csv(csv, index=False)
    jaxwsi.create_project(tmp_path / "p", annotations=csv)
    project = jaxwsi.load_project(tmp_path / "p")
    assert isinstance(project, jaxwsi.Project)
    assert project.name == "p"
    assert project.slides_dir is None
    assert list(project.annotations()["slide"]) == ["slide_a", "slide_b"]
    assert project.tfrecord_dir(299, 302) == tmp_path / "p" / "tfrecords" / "299px_302um"


def test_project_without_annotations_has_an_empty_table(tmp_path):
    project = jaxwsi.create_project(tmp_path / "p")
    table = project.annotations()
    assert list(table.columns) == ["patient", "slide"]
    assert table.empty


def test_settings_paths_may_be_absolute(tmp_path):
    project = jaxwsi.create_project(tmp_path / "p")
    settings = dict(project.settings, tfrecords=str(tmp_path / "elsewhere"))
    (tmp_path / "p" / "settings.json").write_text(json.dumps(settings))
    assert jaxwsi.load_project(tmp_path / "p").tfrecords_dir == tmp_path / "elsewhere"


def test_tfrecord_folders_follow_the_extraction_labels(tmp_path):
    project = jaxwsi.create_project(tmp_path / "p")
    assert project.tfrecord_dir(299, 302).name == tile_size_label(299, 302) == "299px_302um"
    assert project.tfrecord_dir(256, "10x").name == tile_size_label(256, "10x") == "256px_10x"


def test_creating_over_an_existing_project_is_an_error(tmp_path):
    jaxwsi.create_project(tmp_path / "p")
    with pytest.raises(FileExistsError, match="a project already exists"):
        jaxwsi.create_project(tmp_path / "p")


def test_bad_annotations_are_rejected_before_anything_is_written(tmp_path):
    bad = ANNOTATIONS.drop(columns="patient")
    with pytest.raises(AnnotationError, match="missing required column"):
        jaxwsi.create_project(tmp_path / "p", annotations=bad)
    assert not (tmp_path / "p").exists()


def test_missing_slides_folder_is_an_error(tmp_path):
    with pytest.raises(NotADirectoryError, match="slides folder not found"):
        jaxwsi.create_project(tmp_path / "p", slides=tmp_path / "none")


def test_loading_a_non_project_names_the_file(tmp_path):
    with pytest.raises(ProjectError, match="settings.json not found"):
        jaxwsi.load_project(tmp_path)
    (tmp_path / "settings.json").write_text("{")
    with pytest.raises(ValueError, match="settings.json: cannot read JSON"):
        jaxwsi.load_project(tmp_path)
    (tmp_path / "settings.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(ValueError, match=r"missing setting\(s\) \['annotations'"):
        jaxwsi.load_project(tmp_path)


def test_dataset_of_a_tile_size_without_tfrecords_is_an_error(tmp_path):
    project = jaxwsi.create_project(tmp_path / "p", annotations=ANNOTATIONS)
    with pytest.raises(FileNotFoundError, match="run Project.extract_tiles first"):
        project.dataset(64, 100)


def test_extract_tiles_then_dataset_split_and_load(tmp_path, caplog):
    slides = tmp_path / "slides"
    slides.mkdir()
    for i in range(4):
        synthetic_slide(slides / f"s{i}.tiff", width=768, height=512, tissue_class=i % 2, seed=i)
    (slides / "s0.csv").write_text("not a slide")  # other files in the folder are ignored
    annotations = pd.DataFrame(
        {
            "patient": ["P0", "P1", "P2", "P3", "P4"],
            "slide": ["s0", "s1", "s2", "s3", "s4"],
            "kind": ["a", "b", "a", "b", "a"],
        }
    )
    project = jaxwsi.create_project(tmp_path / "p", annotations=annotations, slides=slides)
    report = project.extract_tiles(64, 64, num_workers=0, progress=False)
    assert "1 annotated slide(s) have no image" in caplog.text and "s4" in caplog.text
    assert list(report["slide"]) == ["s0", "s1", "s2", "s3"]
    dataset = project.dataset(64, 64)
    assert dataset.slides() == ["s0", "s1", "s2", "s3"]
    assert [m["total"] for m in dataset.manifest().values()] == list(report["num_tiles"])
    folds = dataset.split("kind", k_fold=2, seed=0)
    [entry] = json.loads(project.splits_path.read_text())
    assert entry["folds"][0]["validation"] == folds[0][1].slides()
    training = folds[0][0]
    loader = training.interleaver("kind", batch_size=2, rank=0, num_replicas=1)
    batch = next(iter(loader))
    assert batch["image"].shape == (2, 64, 64, 3)
    assert set(batch["label"].tolist()) <= {0, 1}


def test_cli_creates_a_project_and_saves_a_split(tmp_path, fixtures_dir, capsys):
    csv = tmp_path / "annotations.csv"
    pd.DataFrame(
        {
            "patient": ["P1", "P2", "P3"],
            "slide": ["slide_a", "slide_b", "slide_c"],
            "label": ["x", "y", "x"],
        }
    ).to_csv(csv, index=False)
    root = tmp_path / "p"
    assert main(["project", "create", str(root), "--annotations", str(csv)]) == 0
    tiles = root / "tfrecords" / "64px_32um"
    tiles.mkdir()
    for name in ("slide_a", "slide_b", "slide_c"):
        shutil.copy(fixtures_dir / "tfrecords" / f"{name}.tfrecords", tiles)
    args = ["project", "split", str(root), "--tile-px", "64", "--tile-um", "32"]
    assert main([*args, "--strategy", "fixed", "--val-fraction", "0.34", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "created" in out and "fold 1: 2 training slides" in out
    [entry] = json.loads((root / "splits.json").read_text())
    assert entry["strategy"] == "fixed" and entry["seed"] == 1
    assert len(entry["folds"][0]["validation"]) == 1


def slideflow_project(tmp_path, fixtures_dir, label="64px_32um"):
    """A project folder as ``slideflow.create_project`` leaves it, with TFRecords extracted into
    its source's ``{tfrecords}/{tile_px}px_{tile_um}um/``."""
    root = tmp_path / "sfproject"
    root.mkdir()
    annotations = pd.DataFrame(
        {
            "patient": ["P1", "P2", "P3"],
            "slide": ["slide_a", "slide_b", "slide_c"],
            "label": ["x", "y", "x"],
        }
    )
    annotations.to_csv(root / "annotations.csv", index=False)
    settings = {
        "name": "MyProject",
        "annotations": "./annotations.csv",
        "dataset_config": "./datasets.json",
        "sources": ["MyProject"],
        "models_dir": "./models",
        "eval_dir": "./eval",
        "slideflow_version": "3.0.2",
    }
    (root / "settings.json").write_text(json.dumps(settings, indent=1))
    source = {
        "slides": str(tmp_path / "slides"),
        "roi": str(root / "roi" / "MyProject"),
        "tiles": None,
        "tfrecords": str(root / "tfrecords" / "MyProject"),
    }
    (root / "datasets.json").write_text(json.dumps({"MyProject": source, "other": source}))
    tiles = root / "tfrecords" / "MyProject" / label
    tiles.mkdir(parents=True)
    for name in ("slide_a", "slide_b", "slide_c"):
        shutil.copy(fixtures_dir / "tfrecords" / f"{name}.tfrecords", tiles)
    return root


def test_a_slideflow_project_folder_loads_as_a_project(tmp_path, fixtures_dir):
    root = slideflow_project(tmp_path, fixtures_dir)
    settings = (root / "settings.json").read_bytes()
    project = jaxwsi.load_project(root)
    assert project.layout == "slideflow" and project.name == "MyProject"
    assert [s.name for s in project.sources] == ["MyProject"]
    assert project.tfrecords_dir == root / "tfrecords" / "MyProject"
    assert project.slides_dir == tmp_path / "slides"
    assert project.models_dir == root / "models"
    assert list(project.annotations()["slide"]) == ["slide_a", "slide_b", "slide_c"]
    dataset = project.dataset(64, 32)
    assert dataset.slides() == ["slide_a", "slide_b", "slide_c"]
    assert dataset.num_tiles > 0
    folds = dataset.split("label", "fixed", val_fraction=0.34, seed=0)
    assert len(folds) == 1
    assert json.loads((root / "splits.json").read_text())[0]["strategy"] == "fixed"
    assert (root / "settings.json").read_bytes() == settings  # opened as it is


def test_slideflow_project_errors_name_the_file(tmp_path, fixtures_dir):
    root = slideflow_project(tmp_path, fixtures_dir)
    settings = json.loads((root / "settings.json").read_text())
    (root / "settings.json").write_text(json.dumps(settings | {"sources": ["nope"]}))
    with pytest.raises(ProjectError, match=r"source\(s\) nope are not in .*datasets.json"):
        jaxwsi.load_project(root)
    (root / "settings.json").write_text(json.dumps(settings | {"dataset_config": "./none.json"}))
    with pytest.raises(ProjectError, match=r"dataset_config .*none.json does not exist"):
        jaxwsi.load_project(root)
    (root / "settings.json").write_text(json.dumps(settings))
    with pytest.raises(FileNotFoundError, match="no TFRecords for 64px_50um"):
        jaxwsi.load_project(root).dataset(64, 50)


def test_dataset_reads_a_slideflow_tfrecords_root_by_tile_size(tmp_path, fixtures_dir, caplog):
    root = slideflow_project(tmp_path, fixtures_dir) / "tfrecords" / "MyProject"
    (root / "256px_10x").mkdir()
    annotations = root.parent.parent / "annotations.csv"
    dataset = jaxwsi.Dataset(annotations, root, tile_px=64, tile_um=32)
    assert dataset.slides() == ["slide_a", "slide_b", "slide_c"]
    assert "no .tfrecords files" not in caplog.text
    assert jaxwsi.Dataset(annotations, root / "64px_32um").slides() == dataset.slides()
    sizes = r"holds TFRecords by tile size \(256px_10x, 64px_32um\): no 64px_50um folder"
    with pytest.raises(DatasetError, match=sizes):
        jaxwsi.Dataset(annotations, root, tile_px=64, tile_um=50)
    with pytest.raises(DatasetError, match="pass tile_px and tile_um to choose one"):
        jaxwsi.Dataset(annotations, root)


def test_extract_tiles_into_a_slideflow_project_writes_each_source(tmp_path, fixtures_dir):
    root = slideflow_project(tmp_path, fixtures_dir)
    slides = tmp_path / "slides"
    slides.mkdir()
    for i, name in enumerate(("slide_a", "slide_b")):
        synthetic_slide(slides / f"{name}.tiff", width=512, height=384, seed=i)
    project = jaxwsi.load_project(root)
    report = project.extract_tiles(64, 64, num_workers=0, progress=False)
    assert list(report["slide"]) == ["slide_a", "slide_b"]
    written = root / "tfrecords" / "MyProject" / "64px_64um"
    assert sorted(p.name for p in written.glob("*.tfrecords")) == [
        "slide_a.tfrecords",
        "slide_b.tfrecords",
    ]
    assert project.dataset(64, 64).slides() == ["slide_a", "slide_b"]
