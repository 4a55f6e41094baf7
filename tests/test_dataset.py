"""Dataset on real TFRecords: membership, warnings, filters, labels, balance, clip, immutability."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter

import pandas as pd
import pytest

import jaxwsi
from jaxwsi.dataset.errors import AnnotationError, DatasetError
from jaxwsi.io import TFRecordError, TFRecordWriter, read_records


@pytest.fixture
def records_written(fixtures_dir) -> dict[str, int]:
    """Records per fixture TFRecord, as TensorFlow counted them (manifest.json)."""
    manifest = json.loads((fixtures_dir / "tfrecords" / "manifest.json").read_text())
    return {
        name.removesuffix(".tfrecords"): info["records_written"]
        for name, info in manifest["files"].items()
        if "/" not in name
    }


@pytest.fixture
def tfrecord_dir(tmp_path, fixtures_dir):
    """slide_a, slide_b, slide_c copied (index files get built beside them)."""
    folder = tmp_path / "tfrecords"
    folder.mkdir()
    for name in ("slide_a", "slide_b", "slide_c"):
        shutil.copy(fixtures_dir / "tfrecords" / f"{name}.tfrecords", folder)
    return folder


# slide_a and slide_b belong to one patient.
ANNOTATIONS = pd.DataFrame(
    {
        "patient": ["P1", "P1", "P2"],
        "slide": ["slide_a", "slide_b", "slide_c"],
        "kind": ["tumor", "tumor", "normal"],
        "score": ["0.5", "0.5", "2"],
        "site": ["S1", "S1", ""],
    }
)


@pytest.fixture
def dataset(tfrecord_dir):
    return jaxwsi.Dataset(annotations=ANNOTATIONS, tfrecords=tfrecord_dir, tile_px=64, tile_um=32)


def test_members_and_tile_counts_come_from_the_tfrecords(dataset, tfrecord_dir, records_written):
    assert dataset.slides() == ["slide_a", "slide_b", "slide_c"]
    assert dataset.patients() == {"slide_a": "P1", "slide_b": "P1", "slide_c": "P2"}
    assert dataset.tfrecords() == [str(tfrecord_dir / f"{s}.tfrecords") for s in dataset.slides()]
    n = records_written
    assert n["slide_a"] == 10 and n["slide_b"] == 25 and n["slide_c"] == 7
    assert dataset.manifest() == {
        str(tfrecord_dir / f"{s}.tfrecords"): {"total": n[s], "clipped": n[s]}
        for s in ("slide_a", "slide_b", "slide_c")
    }
    assert dataset.num_tiles == 10 + 25 + 7
    assert dataset.prob_weights is None and dataset.clips is None
    assert (dataset.tile_px, dataset.tile_um) == (64, 32)


def test_tfrecords_as_a_list_of_paths_and_annotations_as_csv(tmp_path, tfrecord_dir):
    csv = tmp_path / "annotations.csv"
    ANNOTATIONS.to_csv(csv, index=False)
    paths = [tfrecord_dir / "slide_c.tfrecords", tfrecord_dir / "slide_a.tfrecords"]
    dataset = jaxwsi.Dataset(annotations=csv, tfrecords=paths)
    assert dataset.slides() == ["slide_a", "slide_c"]
    assert dataset.annotations["score"].tolist() == ["0.5", "2"]


def test_slides_without_tfrecords_are_left_out_with_a_named_warning(tfrecord_dir, caplog):
    extra = pd.concat(
        [ANNOTATIONS, pd.DataFrame({"patient": ["P3"], "slide": ["slide_z"], "kind": ["x"]})]
    )
    dataset = jaxwsi.Dataset(annotations=extra, tfrecords=tfrecord_dir)
    assert "slide_z" not in dataset.slides()
    assert "1 of 4 annotated slide(s) have no TFRecord and are left out: slide_z" in caplog.text


def test_tfrecords_without_annotations_are_left_out_with_a_named_warning(
    tfrecord_dir, fixtures_dir, caplog
):
    shutil.copy(fixtures_dir / "tfrecords" / "png_tiles.tfrecords", tfrecord_dir)
    dataset = jaxwsi.Dataset(annotations=ANNOTATIONS, tfrecords=tfrecord_dir)
    assert dataset.slides() == ["slide_a", "slide_b", "slide_c"]
    assert "1 TFRecord(s) have no annotation row and are left out" in caplog.text
    assert "png_tiles.tfrecords" in caplog.text


def test_empty_tfrecords_are_left_out_with_a_named_warning(tfrecord_dir, fixtures_dir, caplog):
    shutil.copy(fixtures_dir / "tfrecords" / "empty.tfrecords", tfrecord_dir)
    extra = pd.concat([ANNOTATIONS, pd.DataFrame({"patient": ["P9"], "slide": ["empty"]})])
    dataset = jaxwsi.Dataset(annotations=extra, tfrecords=tfrecord_dir)
    assert "empty" not in dataset.slides()
    assert "1 TFRecord(s) hold no tiles and are left out" in caplog.text


def test_bad_construction_inputs(tmp_path, tfrecord_dir):
    with pytest.raises(DatasetError, match="TFRecord folder not found"):
        jaxwsi.Dataset(annotations=ANNOTATIONS, tfrecords=tmp_path / "nowhere")
    with pytest.raises(DatasetError, match=r"1 TFRecord file\(s\) not found"):
        jaxwsi.Dataset(annotations=ANNOTATIONS, tfrecords=[tmp_path / "x.tfrecords"])
    duplicated = pd.concat([ANNOTATIONS, ANNOTATIONS.iloc[[0]]])
    with pytest.raises(AnnotationError, match=r"duplicate slide rows: 'slide_a' on lines \[2, 5\]"):
        jaxwsi.Dataset(annotations=duplicated, tfrecords=tfrecord_dir)
    with pytest.raises(AnnotationError, match="missing required column"):
        jaxwsi.Dataset(annotations=ANNOTATIONS.drop(columns="slide"), tfrecords=tfrecord_dir)
    with pytest.raises(DatasetError, match="filter: column 'grade' is not in the annotations"):
        jaxwsi.Dataset(annotations=ANNOTATIONS, tfrecords=tfrecord_dir, filters={"grade": 1})
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(tfrecord_dir / "slide_a.tfrecords", other)
    with pytest.raises(DatasetError, match="two TFRecords for slide 'slide_a'"):
        jaxwsi.Dataset(
            annotations=ANNOTATIONS,
            tfrecords=[tfrecord_dir / "slide_a.tfrecords", other / "slide_a.tfrecords"],
        )


def test_filters_are_immutable_and_composable(dataset, caplog):
    caplog.set_level("INFO")
    tumors = dataset.filter({"kind": "tumor"})
    assert tumors.slides() == ["slide_a", "slide_b"]
    assert dataset.slides() == ["slide_a", "slide_b", "slide_c"]  # unchanged
    assert "removed 1 of 3 slide(s)" in caplog.text
    assert tumors.filter({"kind": ["tumor", "normal"]}).slides() == ["slide_a", "slide_b"]
    assert tumors.filter({"kind": "normal"}).slides() == []
    assert tumors.remove_filter("kind").slides() == dataset.slides()
    assert dataset.filter_blank("site").slides() == ["slide_a", "slide_b"]
    assert dataset.filter(min_tiles=10).slides() == ["slide_a", "slide_b"]  # slide_c has 7
    assert dataset.filter({"kind": "tumor"}, min_tiles=11).clear_filters().slides() == [
        "slide_a",
        "slide_b",
        "slide_c",
    ]
    with pytest.raises(DatasetError, match="column 'grade' is not in the annotations"):
        dataset.filter({"grade": 1})
    with pytest.raises(DatasetError, match="column 'grade' is not in the annotations"):
        dataset.filter_blank(["grade"])
    with pytest.raises(DatasetError, match=r"no filter on column\(s\) \['kind'\]"):
        dataset.remove_filter("kind")


def test_labels_of_each_kind(dataset):
    assert dataset.labels("kind") == (
        {"slide_a": 1, "slide_b": 1, "slide_c": 0},
        ["normal", "tumor"],
    )
    assert dataset.labels("score", use_float=True) == (
        {"slide_a": 0.5, "slide_b": 0.5, "slide_c": 2.0},
        [],
    )
    labels, unique = dataset.labels(["kind", "score"], use_float={"score": True})
    assert labels == {"slide_a": [1, 0.5], "slide_b": [1, 0.5], "slide_c": [0, 2.0]}
    assert unique == {"kind": ["normal", "tumor"], "score": []}
    with pytest.raises(DatasetError, match=r"blank 'site': slide_c"):
        dataset.labels("site")
    assert dataset.filter_blank("site").labels("site") == ({"slide_a": 0, "slide_b": 0}, ["S1"])


def test_conflicting_patient_labels_through_the_dataset(tfrecord_dir):
    conflicting = ANNOTATIONS.assign(kind=["tumor", "normal", "normal"])
    dataset = jaxwsi.Dataset(annotations=conflicting, tfrecords=tfrecord_dir)
    with pytest.raises(DatasetError, match=r"P1 \(slide_a=tumor, slide_b=normal\)"):
        dataset.labels("kind")


def test_clip_then_balance_by_tile_uses_clipped_counts(dataset):
    clipped = dataset.clip(8)
    paths = dataset.tfrecords()
    assert clipped.clips == dict(zip(paths, [min(10, 8), min(25, 8), min(7, 8)], strict=True))
    assert clipped.num_tiles == 8 + 8 + 7
    assert clipped.manifest()[paths[1]] == {"total": 25, "clipped": 8}
    balanced = clipped.balance(strategy="tile")
    assert balanced.prob_weights == pytest.approx(
        dict(zip(paths, [8 / 23, 8 / 23, 7 / 23], strict=True))
    )
    assert dataset.clips is None and dataset.prob_weights is None  # the original is unchanged
    assert balanced.unclip().prob_weights == pytest.approx(
        dict(zip(paths, [10 / 42, 25 / 42, 7 / 42], strict=True))
    )
    assert balanced.unbalance().prob_weights is None
    assert clipped.clip(0).clips is None


def test_balance_and_clip_strategies_through_the_dataset(dataset):
    a, b, c = dataset.tfrecords()
    # patient: P1 has 2 slides → 1/(2·2) each; P2 → 1/(2·1).
    assert dataset.balance(strategy="patient").prob_weights == pytest.approx(
        {a: 1 / 4, b: 1 / 4, c: 1 / 2}
    )
    # category (kind): tumor has 2 slides, normal 1 → q = 1/2, 1; Σq = 2·1/2 + 1 = 2.
    assert dataset.balance("kind").prob_weights == pytest.approx({a: 1 / 4, b: 1 / 4, c: 1 / 2})
    # clip by patient: P1 has 35 tiles, P2 has 7 → cap 7 on every TFRecord.
    assert dataset.clip(strategy="patient").clips == {a: 7, b: 7, c: 7}
    # clip by category (kind): tumor 35 tiles, normal 7 → tumor fraction 7/35.
    assert dataset.clip(strategy="category", headers="kind").clips == {
        a: int(10 * 7 / 35),
        b: int(25 * 7 / 35),
        c: 7,
    }
    # proportional: P1 keeps 7 tiles in all, split 10:25 → floor(10·7/35) = 2, floor(25·7/35) = 5.
    assert dataset.clip(strategy="patient", proportional=True).clips == {a: 2, b: 5, c: 7}
    # proportional patient balance: P1's half split 10:25 over its slides.
    assert dataset.balance(strategy="patient", proportional=True).prob_weights == pytest.approx(
        {a: 0.5 * 10 / 35, b: 0.5 * 25 / 35, c: 0.5}
    )
    # Filtering after balancing re-balances what is left with the same strategy.
    assert dataset.balance(strategy="slide").filter({"kind": "tumor"}).prob_weights == {
        a: 0.5,
        b: 0.5,
    }


def test_balance_and_clip_bad_input(dataset):
    with pytest.raises(DatasetError, match="unknown balance strategy 'patients'"):
        dataset.balance(strategy="patients")
    with pytest.raises(DatasetError, match="unknown clip strategy 'tile'"):
        dataset.clip(5, strategy="tile")
    with pytest.raises(DatasetError, match="category balancing needs headers"):
        dataset.balance()
    with pytest.raises(DatasetError, match="category clipping needs headers"):
        dataset.clip(strategy="category")
    with pytest.raises(DatasetError, match=r"numeric header\(s\) \['score'\]: pass force=True"):
        dataset.balance("score")
    forced = dataset.balance("score", force=True).prob_weights
    assert forced == pytest.approx(
        dict(zip(dataset.tfrecords(), [1 / 4, 1 / 4, 1 / 2], strict=True))
    )
    with pytest.raises(DatasetError, match="blank 'site'"):
        dataset.balance("site")
    with pytest.raises(DatasetError, match="cannot balance an empty dataset"):
        dataset.filter({"kind": "none"}).balance(strategy="slide")


def test_a_corrupt_tfrecord_is_named_and_its_loader_raises(tfrecord_dir, fixtures_dir):
    # The dataset counts its readable tiles with a warning; the loader's on_error decides
    # (tests/test_damaged_files.py covers on_error="skip").
    corrupt = tfrecord_dir / "slide_c.tfrecords"
    shutil.copy(fixtures_dir / "tfrecords" / "corrupt" / "truncated.tfrecords", corrupt)
    with pytest.warns(RuntimeWarning, match="slide_c.tfrecords"):
        dataset = jaxwsi.Dataset(annotations=ANNOTATIONS, tfrecords=tfrecord_dir)
    with pytest.raises(TFRecordError, match="slide_c.tfrecords"):
        next(iter(dataset.interleaver(rank=0, num_replicas=1)))


def test_interleaver_gets_paths_labels_weights_and_clips(dataset):
    ready = dataset.clip(8).balance(strategy="patient")
    loader = ready.interleaver(
        "kind",
        batch_size=4,
        infinite=False,
        drop_remainder=False,
        incl_slidenames=True,
        rank=0,
        num_replicas=1,
    )
    paths = ready.tfrecords()
    assert loader.args["paths"] == paths
    assert loader.args["weights"] == [ready.prob_weights[p] for p in paths]
    assert loader.args["clip"] == [8, 8, 7]
    labels, _ = ready.labels("kind")
    per_slide: Counter[str] = Counter()
    for batch in loader:
        slides = [str(s) for s in batch["slide"]]
        per_slide.update(slides)
        assert list(batch["label"]) == [labels[s] for s in slides]
        assert batch["image"].shape[1:] == (64, 64, 3)
    # One finite epoch reads each TFRecord's clipped tiles once.
    assert per_slide == {"slide_a": 8, "slide_b": 8, "slide_c": 7}


def test_interleaver_accepts_a_label_mapping_and_needs_tfrecords(dataset):
    loader = dataset.interleaver(
        {"slide_a": 0.5, "slide_b": 1.5, "slide_c": 2.5}, rank=0, num_replicas=1
    )
    assert loader.args["labels"] == {"slide_a": 0.5, "slide_b": 1.5, "slide_c": 2.5}
    assert loader.args["weights"] is None and loader.args["clip"] is None
    with pytest.raises(DatasetError, match="no TFRecords to load"):
        dataset.filter({"kind": "none"}).interleaver()


def test_annotations_are_a_copy_and_repr_is_short(dataset):
    table = dataset.annotations
    table.loc[0, "kind"] = "changed"
    assert dataset.labels("kind")[1] == ["normal", "tumor"]
    text = repr(dataset.split("kind", k_fold=2, seed=0)[0][0])
    assert "filtered_columns=['slide']" in text and len(text) < 200


def test_grain_dataset_reads_the_balanced_clipped_dataset(dataset):
    ready = dataset.clip(strategy="slide").balance(strategy="slide")  # 7 tiles from each
    source = ready.grain(
        "kind", batch_size=3, infinite=False, drop_remainder=False, incl_slidenames=True, rank=0,
        num_replicas=1,
    )  # fmt: skip
    assert source.interleaver_args["clip"] == [7, 7, 7]
    assert source.interleaver_args["weights"] == pytest.approx([1 / 3] * 3)
    labels, _ = ready.labels("kind")
    per_slide: Counter[str] = Counter()
    for batch in source.map(lambda b: b):
        slides = [str(s) for s in batch["slide"]]
        per_slide.update(slides)
        assert list(batch["label"]) == [labels[s] for s in slides]
    assert per_slide == {"slide_a": 7, "slide_b": 7, "slide_c": 7}


def test_a_clip_that_empties_a_tfrecord_is_logged(tfrecord_dir, caplog):
    tile = next(iter(read_records(tfrecord_dir / "slide_c.tfrecords")))
    with TFRecordWriter(tfrecord_dir / "slide_d.tfrecords") as writer:
        writer.write({**tile, "slide": b"slide_d"})  # one tile
    table = pd.DataFrame(
        {"patient": ["P1", "P2", "P3"], "slide": ["slide_a", "slide_b", "slide_d"]}
    ).assign(kind=["u", "v", "v"])
    dataset = jaxwsi.Dataset(table, tfrecord_dir)
    # Category u has 10 tiles, v has 25 + 1 = 26: v keeps floor(n · 10/26) → 9 and 0.
    clipped = dataset.clip(strategy="category", headers="kind")
    assert list(clipped.clips.values()) == [10, int(25 * 10 / 26), int(1 * 10 / 26)] == [10, 9, 0]
    assert "clipping leaves 1 TFRecord(s) with no tiles to read" in caplog.text
    assert "slide_d.tfrecords" in caplog.text


def test_the_cohort_side_imports_no_jax_or_grain(tmp_path, fixtures_dir):
    """Annotations → Dataset → balance, clip, split in a fresh interpreter: no JAX, no Grain."""
    for name in ("slide_a", "slide_b", "slide_c"):
        shutil.copy(fixtures_dir / "tfrecords" / f"{name}.tfrecords", tmp_path)
    code = f"""
import sys
import pandas as pd
import jaxwsi
table = pd.DataFrame({{"patient": ["P1", "P2", "P3"], "slide": ["slide_a", "slide_b", "slide_c"],
                      "label": ["x", "y", "x"]}})
dataset = jaxwsi.Dataset(table, {str(tmp_path)!r}).balance("label").clip(5)
dataset.split("label", "fixed", val_fraction=0.34, splits={str(tmp_path / "splits.json")!r})
heavy = sorted({{"jax", "grain", "flax", "optax"}} & set(sys.modules))
assert not heavy, heavy
"""
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
