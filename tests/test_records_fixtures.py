"""jaxwsi.io against the TensorFlow-written fixtures: every number must match manifest.json."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from jaxwsi.io import TFRecordError, TFRecordWriter, iter_records_with_offsets, read_records

GOOD = ["slide_a.tfrecords", "slide_b.tfrecords", "slide_c.tfrecords", "png_tiles.tfrecords"]
CORRUPT = [
    "corrupt/truncated.tfrecords",
    "corrupt/bad_length_crc.tfrecords",
    "corrupt/bad_data_crc.tfrecords",
    "corrupt/garbage.tfrecords",
]


@pytest.fixture(scope="module")
def tfrecords_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "tfrecords"


@pytest.fixture(scope="module")
def manifest(tfrecords_dir: Path) -> dict:
    return json.loads((tfrecords_dir / "manifest.json").read_text())["files"]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("name", GOOD)
def test_good_file_matches_manifest_record_by_record(tfrecords_dir, manifest, name):
    path = tfrecords_dir / name
    expected = manifest[name]
    raw = path.read_bytes()
    assert _sha256(raw) == expected["sha256"]
    got = list(iter_records_with_offsets(path))
    assert len(got) == expected["records_written"] == expected["tf_readable_records"]
    for (offset, framed, features), rec in zip(got, expected["records"], strict=True):
        assert offset == rec["offset"]
        assert framed == rec["framed_length"] == rec["data_length"] + 16
        data = raw[offset + 12 : offset + 12 + rec["data_length"]]
        assert _sha256(data) == rec["record_sha256"]
        assert int.from_bytes(raw[offset + 8 : offset + 12], "little") == rec["length_crc_masked"]
        assert list(features) == rec["serialized_feature_key_order"]
        assert sorted(features) == rec["feature_keys"]
        assert features["slide"] == rec["slide"].encode()
        assert isinstance(features["image_raw"], bytes)
        assert len(features["image_raw"]) == rec["image_raw_nbytes"]
        assert _sha256(features["image_raw"]) == rec["image_raw_sha256"]
        for key in ("loc_x", "loc_y"):
            assert features[key].dtype == np.int64
            assert features[key].shape == (1,)
            assert int(features[key][0]) == rec[key]
    assert sum(framed for _, framed, _ in got) == expected["size_bytes"]


def test_empty_file_has_no_records(tfrecords_dir, manifest):
    assert manifest["empty.tfrecords"]["size_bytes"] == 0
    assert list(read_records(tfrecords_dir / "empty.tfrecords")) == []


@pytest.mark.parametrize("name", CORRUPT)
def test_corrupt_file_reads_what_tensorflow_read_then_names_the_offset(
    tfrecords_dir, manifest, name
):
    expected = manifest[name]
    tf_error = expected["tf_error"]
    path = tfrecords_dir / name
    got = []
    with pytest.raises(TFRecordError) as info:
        for item in iter_records_with_offsets(path):
            got.append(item)
    assert len(got) == expected["tf_readable_records"] == tf_error["after_records"]
    message = str(info.value)
    assert str(path) in message
    # TensorFlow names the record header offset, except for data-CRC errors where it names the
    # data offset (header + 12); the message names the header offset and, there, both.
    bad_offset = sum(framed for _, framed, _ in got)
    assert f"byte offset {bad_offset}" in message
    assert f"byte offset {tf_error['reported_offset']}" in message
    if "truncated" in name:
        assert "truncated" in message
        assert bad_offset == tf_error["reported_offset"] == 6655
    elif "bad_data_crc" in name:
        assert "data CRC32C" in message
        assert tf_error["reported_offset"] == bad_offset + 12
    elif "bad_length_crc" in name:
        assert "length CRC32C" in message
    else:
        assert bad_offset == 0
        assert "is this a TFRecord file?" in message
    # The records before the bad one are exactly TensorFlow's.
    reference = manifest["slide_a.tfrecords"]["records"]
    for (offset, _, features), rec in zip(got, reference, strict=False):
        assert offset == rec["offset"]
        assert _sha256(features["image_raw"]) == rec["image_raw_sha256"]


@pytest.mark.parametrize(
    "name", ["corrupt/bad_length_crc.tfrecords", "corrupt/bad_data_crc.tfrecords"]
)
def test_verify_false_skips_crcs_and_returns_the_corrupted_bytes(tfrecords_dir, manifest, name):
    records = list(read_records(tfrecords_dir / name, verify=False))
    assert len(records) == 10
    reference = manifest["slide_a.tfrecords"]["records"]
    changed = [
        i
        for i, (features, rec) in enumerate(zip(records, reference, strict=True))
        if _sha256(features["image_raw"]) != rec["image_raw_sha256"]
    ]
    # Only the data-CRC fixture has a flipped data byte (inside record 2's image).
    assert changed == ([2] if "data" in name else [])


@pytest.mark.parametrize("name", GOOD)
def test_writer_reproduces_tensorflows_bytes_exactly(tfrecords_dir, manifest, tmp_path, name):
    """Re-writing the decoded records in TensorFlow's key order gives the identical file."""
    out = tmp_path / name
    with TFRecordWriter(out) as writer:
        for features in read_records(tfrecords_dir / name):
            writer.write(features)
    assert _sha256(out.read_bytes()) == manifest[name]["sha256"]


def test_concurrent_readers_in_threads_agree(tfrecords_dir, manifest):
    """Readers release the GIL around I/O; several at once in threads must not interfere."""
    from concurrent.futures import ThreadPoolExecutor

    def image_hashes(name):
        return [_sha256(r["image_raw"]) for r in read_records(tfrecords_dir / name)]

    names = GOOD * 3
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(image_hashes, names))
    for name, hashes in zip(names, results, strict=True):
        assert hashes == [r["image_raw_sha256"] for r in manifest[name]["records"]]
