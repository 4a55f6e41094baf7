"""Slideflow-compatible indexes: contents match the manifest, stale indexes are rebuilt, legacy
formats are read, many files are indexed in parallel."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from jaxwsi.io import (
    TFRecordError,
    TFRecordWriter,
    build_index,
    build_indexes,
    index_path,
    iter_records_with_offsets,
    load_index,
    load_locations,
    read_records,
)

GOOD = ["slide_a", "slide_b", "slide_c", "png_tiles"]


@pytest.fixture
def copies(fixtures_dir: Path, tmp_path: Path) -> Path:
    """Writable copies of the fixture TFRecords (indexes are written beside them)."""
    src = fixtures_dir / "tfrecords"
    for name in [*GOOD, "empty"]:
        shutil.copy(src / f"{name}.tfrecords", tmp_path / f"{name}.tfrecords")
    shutil.copy(src / "corrupt" / "truncated.tfrecords", tmp_path / "truncated.tfrecords")
    return tmp_path


@pytest.fixture(scope="module")
def manifest(fixtures_dir: Path) -> dict:
    return json.loads((fixtures_dir / "tfrecords" / "manifest.json").read_text())["files"]


def _write(path: Path, locs: list[tuple[int, int]], payload: int = 10) -> None:
    with TFRecordWriter(path) as w:
        for x, y in locs:
            w.write({"image_raw": b"j" * payload, "slide": "s", "loc_x": x, "loc_y": y})


def test_index_path_follows_slideflow_naming(tmp_path):
    assert index_path("a/slide.tfrecords") == Path("a/slide.index.npz")
    assert index_path("a/slide.tfrecord") == Path("a/slide.index.npz")
    assert index_path("a/slide.v2.tfrecords") == Path("a/slide.v2.index.npz")
    assert index_path("a/slide") == Path("a/slide.index.npz")


@pytest.mark.parametrize("name", GOOD)
def test_index_matches_manifest_and_slideflow_layout(copies, manifest, name):
    path = copies / f"{name}.tfrecords"
    out = build_index(path)
    assert out == str(copies / f"{name}.index.npz")
    records = manifest[f"{name}.tfrecords"]["records"]
    with np.load(out) as npz:
        assert npz["arr_0"].dtype == np.int64
        assert npz["arr_0"].tolist() == [[r["offset"], r["framed_length"]] for r in records]
        assert npz["locations"].dtype == np.int64
        assert npz["locations"].tolist() == [[r["loc_x"], r["loc_y"]] for r in records]
    assert load_index(path).tolist() == [[r["offset"], r["framed_length"]] for r in records]
    assert load_locations(path).tolist() == [[r["loc_x"], r["loc_y"]] for r in records]


def test_empty_file_gets_an_empty_index(copies):
    path = copies / "empty.tfrecords"
    with np.load(build_index(path)) as npz:
        assert npz["arr_0"].shape == (0, 2)
        assert "locations" not in npz.files
    assert load_locations(path) is None


def test_records_without_locations_give_no_locations(tmp_path):
    path = tmp_path / "noloc.tfrecords"
    with TFRecordWriter(path) as w:
        w.write({"image_raw": b"a", "loc_x": 1, "loc_y": 2})
        w.write({"image_raw": b"b"})
    assert load_index(path).shape == (2, 2)
    assert load_locations(path) is None


def test_current_index_is_reused_and_force_rebuilds(copies):
    path = copies / "slide_a.tfrecords"
    out = Path(build_index(path))
    first = out.stat().st_mtime_ns
    os.utime(out, ns=(first - 10**9, first - 10**9))
    assert build_index(path) == str(out)
    assert out.stat().st_mtime_ns == first - 10**9  # kept, not rewritten
    build_index(path, force=True)
    assert out.stat().st_mtime_ns != first - 10**9


def test_appended_records_make_the_index_stale(tmp_path):
    path = tmp_path / "grow.tfrecords"
    _write(path, [(1, 1), (2, 2)])
    assert load_index(path).shape == (2, 2)
    _write(path, [(1, 1), (2, 2), (3, 3)])
    assert load_index(path).shape == (3, 2)
    assert load_locations(path).tolist() == [[1, 1], [2, 2], [3, 3]]


def test_same_size_and_mtime_but_new_record_boundaries_is_stale(tmp_path):
    path = tmp_path / "same.tfrecords"
    _write(path, [(1, 1), (2, 2)], payload=20)
    stat = path.stat()
    old = load_index(path)
    # Rewrite with the same total size but different record lengths, then restore the mtime:
    # only the content check can notice.
    with TFRecordWriter(path) as w:
        w.write({"image_raw": b"j" * 10, "slide": "s", "loc_x": 1, "loc_y": 1})
        w.write({"image_raw": b"j" * 30, "slide": "s", "loc_x": 2, "loc_y": 2})
    assert path.stat().st_size == stat.st_size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    new = load_index(path)
    assert new.tolist() != old.tolist()
    assert new.tolist() == [[o, n] for o, n, _ in iter_records_with_offsets(path)]
    assert new[0, 1] + 20 == new[1, 1]  # payloads of 10 and 30 bytes


def test_legacy_text_and_npy_indexes_are_read_when_current(copies, manifest):
    path = copies / "slide_a.tfrecords"
    expected = [[r["offset"], r["framed_length"]] for r in manifest["slide_a.tfrecords"]["records"]]
    text = copies / "slide_a.index"
    text.write_text("".join(f"{o} {n}\n" for o, n in expected))
    assert load_index(path).tolist() == expected
    assert not (copies / "slide_a.index.npz").exists()  # the legacy index was used as is
    text.unlink()
    np.save(copies / "slide_a.index.npy", np.array(expected, dtype=np.int64))
    assert load_index(path).tolist() == expected
    assert not (copies / "slide_a.index.npz").exists()


def test_wrong_legacy_index_is_not_trusted(copies, manifest):
    path = copies / "slide_a.tfrecords"
    expected = [[r["offset"], r["framed_length"]] for r in manifest["slide_a.tfrecords"]["records"]]
    wrong = [[o, n] for o, n in expected[:-1]]  # a record missing: does not end at the file end
    (copies / "slide_a.index").write_text("".join(f"{o} {n}\n" for o, n in wrong))
    assert load_index(path).tolist() == expected
    assert (copies / "slide_a.index.npz").exists()


def test_malformed_index_file_is_rebuilt(copies, manifest):
    path = copies / "slide_b.tfrecords"
    (copies / "slide_b.index.npz").write_bytes(b"not a zip file")
    assert len(load_index(path)) == manifest["slide_b.tfrecords"]["records_written"]


def test_build_indexes_in_parallel_reports_the_bad_file_after_indexing_the_good(copies):
    paths = [copies / f"{n}.tfrecords" for n in [*GOOD, "truncated"]]
    with pytest.raises(
        TFRecordError, match="truncated.tfrecords: truncated record at byte offset 6655"
    ):
        build_indexes(paths)
    for name in GOOD:
        assert (copies / f"{name}.index.npz").exists()
    assert not (copies / "truncated.index.npz").exists()
    out = build_indexes(paths[:-1])
    assert out == [str(copies / f"{n}.index.npz") for n in GOOD]


def test_index_offsets_seek_to_the_right_records(copies):
    path = copies / "slide_b.tfrecords"
    raw = path.read_bytes()
    records = list(read_records(path))
    for (offset, framed), features in zip(load_index(path), records, strict=True):
        chunk = raw[offset : offset + framed]
        assert features["image_raw"] in chunk


def test_unwritable_folder_still_gives_the_index_from_memory(copies, manifest, monkeypatch):
    """A shared read-only dataset: saving fails, loading still works (simulated; as root a
    chmod would not deny the write)."""
    import jaxwsi.io.index as index_module

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(copies))

    monkeypatch.setattr(index_module, "_write_index", refuse)
    path = copies / "slide_c.tfrecords"
    records = manifest["slide_c.tfrecords"]["records"]
    with pytest.warns(UserWarning, match="index not saved"):
        got = load_index(path)
    assert got.tolist() == [[r["offset"], r["framed_length"]] for r in records]
    with pytest.warns(UserWarning, match="index not saved"):
        locations = load_locations(path)
    assert locations.tolist() == [[r["loc_x"], r["loc_y"]] for r in records]
    assert not (copies / "slide_c.index.npz").exists()
    with pytest.raises(PermissionError):
        build_index(path)
