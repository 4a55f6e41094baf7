"""jaxwsi.io.Interleaver on TensorFlow-written fixtures and generated files: outputs, decode,
labels, resume, pickling and every bad input."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil

import numpy as np
import pytest
from interleaver_data import encode, pairs, tile, write_file, write_files

from jaxwsi.io import TFRecordError, build_index
from jaxwsi.io.interleaver import Interleaver

SLIDES = ["slide_a", "slide_b", "slide_c"]


@pytest.fixture(scope="module")
def tfrecord_copies(fixtures_dir, tmp_path_factory):
    """The TF-written fixture files, copied: the loader writes .index.npz beside its files,
    and the fixtures folder must stay untouched."""
    folder = tmp_path_factory.mktemp("tf_fixtures")
    for name in [*SLIDES, "png_tiles"]:
        shutil.copy(fixtures_dir / "tfrecords" / f"{name}.tfrecords", folder)
    return folder


@pytest.fixture(scope="module")
def fixture_files(tfrecord_copies):
    return [str(tfrecord_copies / f"{s}.tfrecords") for s in SLIDES]


@pytest.fixture(scope="module")
def manifest(fixtures_dir):
    return json.loads((fixtures_dir / "tfrecords" / "manifest.json").read_text())


def make(paths, **kwargs):
    kwargs.setdefault("rank", 0)
    kwargs.setdefault("num_replicas", 1)
    return Interleaver(paths, **kwargs)


def one_epoch(paths, **kwargs):
    return list(make(paths, infinite=False, drop_remainder=False, **kwargs))


def test_outputs_have_the_documented_keys_shapes_and_values(fixture_files, manifest):
    labels = {"slide_a": 0, "slide_b": 1, "slide_c": 2}
    batches = one_epoch(fixture_files, batch_size=8, labels=labels, incl_slidenames=True,
                        incl_loc=True)  # fmt: skip
    b = batches[0]
    assert set(b) == {"image", "label", "slide", "loc_x", "loc_y"}
    assert b["image"].shape == (8, 64, 64, 3) and b["image"].dtype == np.uint8
    facts = {
        (r["slide"], r["loc_x"], r["loc_y"])
        for name in (f"{s}.tfrecords" for s in SLIDES)
        for r in manifest["files"][name]["records"]
    }
    seen = [
        (str(s), int(x), int(y))
        for batch in batches
        for s, x, y in zip(batch["slide"], batch["loc_x"], batch["loc_y"], strict=True)
    ]
    assert sorted(seen) == sorted(facts)
    for batch in batches:
        assert [labels[s] for s in batch["slide"]] == batch["label"].tolist()


@pytest.mark.parametrize("name", ["slide_a", "slide_b", "slide_c", "png_tiles"])
def test_every_tile_decodes_to_the_reference_pixels(fixtures_dir, tfrecord_copies, manifest, name):
    """JPEG: bit-identical to Pillow and to TF's INTEGER_ACCURATE decode (libjpeg-turbo ISLOW);
    PNG: identical to TF's decode. Checked by sha256 for every record."""
    folder = tfrecord_copies
    records = {
        (r["loc_x"], r["loc_y"]): r for r in manifest["files"][f"{name}.tfrecords"]["records"]
    }
    (batch,) = one_epoch([str(folder / f"{name}.tfrecords")], batch_size=64, incl_loc=True)
    assert len(batch["image"]) == len(records)
    for image, x, y in zip(batch["image"], batch["loc_x"], batch["loc_y"], strict=True):
        record = records[(int(x), int(y))]
        digest = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
        key = "pil_decoded_sha256" if record["image_format"] == "jpeg" else "decoded_sha256"
        assert digest == record[key], (name, x, y)
        if record["image_format"] == "jpeg":
            assert digest == record["tf_decode_jpeg_integer_accurate_sha256"]
    first = manifest["files"][f"{name}.tfrecords"]["records"][0]
    tf_decoded = np.load(fixtures_dir / "tfrecords" / "npy" / f"{name}.rec0.tf_decoded.npy")
    (ordered,) = one_epoch([str(folder / f"{name}.tfrecords")], batch_size=64, shuffle=False)
    assert np.abs(ordered["image"][0].astype(int) - tf_decoded).max() <= first.get(
        "pil_vs_tf_max_abs_diff", 0
    )


def test_decode_false_yields_the_encoded_bytes(tmp_path):
    raw = {i: encode(tile(i)) for i in range(3)}
    path = write_file(tmp_path / "a.tfrecords", 0, 3, image_bytes=raw)
    (batch,) = one_epoch([str(path)], batch_size=3, decode=False, shuffle=False)
    assert batch["image"].dtype == object
    assert list(batch["image"]) == [raw[0], raw[1], raw[2]]


def test_labels_follow_the_slide_feature_not_the_file_name(tmp_path):
    path = write_file(tmp_path / "named_b.tfrecords", 0, 4, slide="a")
    (batch,) = one_epoch([str(path)], batch_size=4, labels={"a": [1.0, 2.0], "named_b": [0, 0]})
    np.testing.assert_array_equal(batch["label"], [[1.0, 2.0]] * 4)
    with pytest.raises(ValueError, match=r'record \d+ has slide "a", which has no label'):
        one_epoch([str(path)], batch_size=4, labels={"named_b": 1})


def test_len_and_drop_remainder(tmp_path):
    paths = write_files(tmp_path, [10, 7])
    il = make(paths, batch_size=4, infinite=False, drop_remainder=True)
    assert len(il) == 4 and [len(b["image"]) for b in il] == [4, 4, 4, 4]
    assert [len(b["image"]) for b in one_epoch(paths, batch_size=4)] == [4, 4, 4, 4, 1]
    with pytest.raises(TypeError, match="infinite"):
        len(make(paths))


def test_finite_mode_keeps_the_remainder_by_default(tmp_path):
    # Issue 9: a validation loader over 37 records with batch_size=64 yielded nothing.
    paths = write_files(tmp_path, [20, 17])
    il = make(paths, batch_size=64, infinite=False)
    assert not il.settings.drop_remainder
    assert len(il) == 1 and [len(b["image"]) for b in il] == [37]
    assert [len(b["image"]) for b in make(paths, batch_size=16, infinite=False)] == [16, 16, 5]


def test_each_epoch_is_a_new_order_of_the_same_records(tmp_path):
    paths = write_files(tmp_path, [10, 7])
    il = make(paths, batch_size=3, infinite=False, drop_remainder=False, incl_loc=True)
    e0 = [p for b in il for p in pairs(b)]
    e1 = [p for b in il for p in pairs(b)]
    assert sorted(e0) == sorted(e1) and e0 != e1 and len(e0) == 17


@pytest.mark.parametrize("infinite", [True, False])
def test_set_state_resumes_the_identical_stream(tmp_path, infinite):
    paths = write_files(tmp_path, [9, 14, 5])
    args = dict(batch_size=4, infinite=infinite, weights=[1, 2, 3], clip=[9, 10, 5], seed=3)
    reference = make(paths, **args)
    expected = [next(reference)["image"] for _ in range(6)]
    first = make(paths, **args)
    for _ in range(2):
        next(first)
    state = json.loads(json.dumps(first.get_state()))
    resumed = make(paths, **args)
    resumed.set_state(state)
    for want in expected[2:]:
        np.testing.assert_array_equal(next(resumed)["image"], want)


def test_pickled_interleaver_continues_from_its_position(tmp_path):
    paths = write_files(tmp_path, [9, 14])
    il = make(paths, batch_size=4, incl_loc=True)
    next(il)
    copy = pickle.loads(pickle.dumps(il))
    assert pairs(next(copy)) == pairs(next(il))
    fresh = pickle.loads(pickle.dumps(make(paths, batch_size=4, incl_loc=True)))
    assert pairs(next(fresh)) == pairs(next(make(paths, batch_size=4, incl_loc=True)))


def test_missing_file_is_file_not_found(tmp_path):
    paths = write_files(tmp_path, [3])
    with pytest.raises(FileNotFoundError, match="nope.tfrecords"):
        next(make([*paths, str(tmp_path / "nope.tfrecords")]))


def test_corrupt_record_raises_or_is_skipped(tmp_path, fixtures_dir):
    # An index built while the file was intact, then a flipped data byte in record 2 (the
    # fixture bad_data_crc): the corruption is found only when the record is read.
    good, bad = tmp_path / "good.tfrecords", tmp_path / "bad.tfrecords"
    shutil.copy(fixtures_dir / "tfrecords" / "slide_a.tfrecords", good)
    shutil.copy(fixtures_dir / "tfrecords" / "corrupt" / "bad_data_crc.tfrecords", bad)
    with np.load(build_index(good)) as z:
        arrays = dict(z)
    stat = os.stat(bad)
    arrays["source_stat"] = np.array([stat.st_size, stat.st_mtime_ns], dtype=np.int64)
    np.savez(tmp_path / "bad.index.npz", **arrays)
    bad = str(bad)
    with pytest.raises(TFRecordError, match=r"bad\.tfrecords.*byte offset 4548"):
        one_epoch([bad], batch_size=4, shuffle=False)
    with pytest.warns(RuntimeWarning, match="skipped 1 bad record"):
        il = make([bad], batch_size=3, infinite=False, drop_remainder=False, shuffle=False,
                  on_error="skip", incl_loc=True)  # fmt: skip
        batches = list(il)
    assert il.skipped == 1
    assert sum(len(b["image"]) for b in batches) == 9
    assert [len(b["image"]) for b in batches] == [3, 3, 3]


def test_corrupt_jpeg_raises_or_is_skipped(tmp_path):
    broken = encode(tile(1))[:40]
    path = str(write_file(tmp_path / "j.tfrecords", 0, 5, image_bytes={2: broken}))
    with pytest.raises(TFRecordError, match=r"j\.tfrecords: record 2 \(byte offset \d+\): JPEG"):
        one_epoch([path], batch_size=5, shuffle=False)
    with pytest.warns(RuntimeWarning, match="record 2"):
        il = make([path], batch_size=2, infinite=False, drop_remainder=False, shuffle=False,
                  on_error="skip", incl_loc=True)  # fmt: skip
        batches = list(il)
    assert [p for b in batches for p in pairs(b)] == [(0, 0), (0, 1), (0, 3), (0, 4)]
    assert il.skipped == 1
    ref = one_epoch([str(write_file(tmp_path / "ok.tfrecords", 0, 5))], batch_size=4,
                    shuffle=False)[0]["image"]  # fmt: skip
    np.testing.assert_array_equal(batches[1]["image"][0], ref[3])  # moved over the skipped slot


def test_mixed_tile_sizes_in_one_batch_are_an_error(tmp_path):
    small = write_file(tmp_path / "s.tfrecords", 0, 2, size=16)
    big = write_file(tmp_path / "b.tfrecords", 1, 2, size=24)
    with pytest.raises(TFRecordError, match="tiles of one batch must have one size"):
        one_epoch([str(small), str(big)], batch_size=4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(weights=[1.0]), "weights has 1 entries but there are 2 files"),
        (dict(weights=[1.0, -1.0]), "weights of .*f1.tfrecords is -1.0"),
        (dict(weights=[0.0, 0.0]), "all weights are zero"),
        (dict(weights=[1.0, float("nan")]), "must be finite"),
        (dict(clip=[1, 2, 3]), "clip has 3 entries"),
        (dict(clip=-1), "clip of .*f0.tfrecords is -1"),
        (dict(clip=[1.5, 2]), "whole number"),
        (dict(weights={"x.tfrecords": 1.0}), "weights has no entry for"),
        (dict(on_error="ignore"), "on_error must be one of"),
        (dict(batch_size=0), "batch_size must be >= 1"),
        (dict(rank=2, num_replicas=2), "rank 2 is out of range"),
        (dict(worker=1, num_workers=1), "worker 1 is out of range"),
        (dict(labels={"a": "cat"}), "labels must be int, float or sequences"),
        (dict(labels={"a": [1, 2], "b": [1]}), "same shape"),
    ],
)
def test_bad_arguments_are_rejected_with_the_reason(tmp_path, kwargs, message):
    paths = write_files(tmp_path, [3, 3])
    with pytest.raises(ValueError, match=message):
        next(make(paths, **kwargs))


def test_weights_and_clip_accept_dicts_by_path(tmp_path):
    paths = write_files(tmp_path, [6, 6])
    batches = one_epoch(paths, batch_size=4, clip={paths[0]: 2, paths[1]: 3}, incl_loc=True)
    assert sorted(f for b in batches for f, _ in pairs(b)) == [0, 0, 1, 1, 1]
    il = make(paths, batch_size=8, weights={paths[0]: 0, paths[1]: 1}, incl_loc=True)
    assert {f for _ in range(3) for f, _ in pairs(next(il))} == {1}


def test_empty_files_are_allowed(fixtures_dir, tmp_path):
    empty = tmp_path / "empty.tfrecords"
    shutil.copy(fixtures_dir / "tfrecords" / "empty.tfrecords", empty)
    paths = [*write_files(tmp_path, [3]), str(empty)]
    assert sum(len(b["image"]) for b in one_epoch(paths, batch_size=2)) == 3


def test_bad_states_are_rejected(tmp_path):
    paths = write_files(tmp_path, [5, 5])
    il = make(paths, batch_size=2)
    with pytest.raises(ValueError, match=r"lacks \['step', 'draws'\]"):
        il.set_state({"epoch": 0})
    with pytest.raises(ValueError, match="1 per-part counters for a shard with 2 parts"):
        il.set_state({"epoch": 0, "step": 1, "draws": [1]})
    with pytest.raises(ValueError, match="step is not the sum"):
        il.set_state({"epoch": 0, "step": 5, "draws": [1, 1]})
    finite = make(paths, batch_size=2, infinite=False)
    with pytest.raises(ValueError, match="6 draws from part 0, which has 5 records"):
        finite.set_state({"epoch": 0, "step": 6, "draws": [6, 0]})


def test_read_only_folders_are_scanned_not_written(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    paths = write_files(folder, [4, 3])
    folder.chmod(0o555)
    try:
        with pytest.warns(UserWarning, match="index not saved"):
            batches = one_epoch(paths, batch_size=4)
        assert sorted(os.listdir(folder)) == ["f0.tfrecords", "f1.tfrecords"]
    finally:
        folder.chmod(0o755)
    assert sum(len(b["image"]) for b in batches) == 7
    one_epoch(paths, batch_size=4)
    assert sorted(os.listdir(folder))[:2] == ["f0.index.npz", "f0.tfrecords"]
