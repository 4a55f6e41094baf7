"""TFRecordWriter: value typing, atomic temp-file + rename, and files other readers accept."""

from __future__ import annotations

import numpy as np
import pytest

from jaxwsi.io import TFRecordWriter, encode_example, iter_records_with_offsets, read_records


def _only(path):
    (record,) = list(read_records(path))
    return record


def test_value_typing_rules(tmp_path):
    path = tmp_path / "types.tfrecords"
    with TFRecordWriter(path) as w:
        w.write(
            {
                "raw": b"\x00\xff",
                "text": "slide é",
                "many_bytes": [b"a", "b", bytearray(b"c")],
                "int": 7,
                "bool": True,
                "ints": [1, -2, 2**63 - 1],
                "int_array": np.array([[1, 2]], dtype=np.uint8)[0],
                "float": 0.5,
                "mixed": [1, 2.5],
                "float_array": np.array([1.0, np.inf], dtype=np.float64),
                "empty_ints": np.array([], dtype=np.int64),
                "np_scalar": np.int32(-4),
            }
        )
    r = _only(path)
    assert r["raw"] == b"\x00\xff"
    assert r["text"] == "slide é".encode()
    assert r["many_bytes"] == [b"a", b"b", b"c"]
    for key, values in [
        ("int", [7]),
        ("bool", [1]),
        ("ints", [1, -2, 2**63 - 1]),
        ("int_array", [1, 2]),
        ("empty_ints", []),
        ("np_scalar", [-4]),
    ]:
        assert r[key].dtype == np.int64 and r[key].ndim == 1
        assert r[key].tolist() == values
    for key, values in [("float", [0.5]), ("mixed", [1.0, 2.5]), ("float_array", [1.0, np.inf])]:
        assert r[key].dtype == np.float32 and r[key].ndim == 1
        assert r[key].tolist() == values


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ([], ValueError, "empty sequence"),
        ({"nested": 1}, TypeError, "cannot encode a value of type dict"),
        ([b"a", 1], TypeError, "cannot encode a sequence of bytes, int"),
        (2**63, ValueError, "does not fit in int64"),
        (np.array([2**64 - 1], dtype=np.uint64), ValueError, "does not fit in int64"),
        (np.zeros((2, 2)), ValueError, "1-D"),
        (None, TypeError, "NoneType"),
    ],
)
def test_bad_values_name_the_key_and_leave_no_file(tmp_path, value, error, match):
    path = tmp_path / "bad.tfrecords"
    with pytest.raises(error, match=match) as info, TFRecordWriter(path) as w:
        w.write({"key": value})
    assert "'key'" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_exception_in_block_removes_temp_and_keeps_existing_file(tmp_path):
    path = tmp_path / "out.tfrecords"
    with TFRecordWriter(path) as w:
        w.write({"v": 1})
    before = path.read_bytes()
    with pytest.raises(RuntimeError), TFRecordWriter(path) as w:
        w.write({"v": 2})
        w.write({"v": 3})
        raise RuntimeError("crash mid-write")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tfrecords"]


def test_nothing_appears_under_the_final_name_before_close(tmp_path):
    path = tmp_path / "out.tfrecords"
    w = TFRecordWriter(path)
    w.write({"v": 1})
    assert not path.exists()
    (tmp,) = list(tmp_path.iterdir())
    assert tmp.name.startswith(".out.tfrecords.tmp-")
    w.close()
    w.close()  # idempotent
    assert [p.name for p in tmp_path.iterdir()] == ["out.tfrecords"]
    assert w.records_written == 1
    with pytest.raises(ValueError, match="closed"):
        w.write({"v": 2})


def test_writer_into_missing_folder_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        TFRecordWriter(tmp_path / "no" / "such" / "dir.tfrecords")


def test_raw_records_and_offsets(tmp_path):
    path = tmp_path / "raw.tfrecords"
    payload = encode_example({"a": 1})
    with TFRecordWriter(path) as w:
        w.write_raw(payload)
        w.write_raw(b"")
    got = list(iter_records_with_offsets(path))
    assert [(o, n) for o, n, _ in got] == [(0, len(payload) + 16), (len(payload) + 16, 16)]
    assert got[0][2]["a"].tolist() == [1]
    assert got[1][2] == {}


def test_other_readers_accept_our_files(tmp_path):
    """The pure-Python `tfrecord` package and Google's protobuf runtime read what we write."""
    tfrecord_reader = pytest.importorskip("tfrecord.reader")
    example_pb2 = pytest.importorskip("tfrecord.example_pb2")
    path = tmp_path / "x.tfrecords"
    rows = [
        {"image_raw": bytes(range(i, i + 50)), "slide": "s1", "loc_x": i, "f": [i / 2, -1.0]}
        for i in range(5)
    ]
    with TFRecordWriter(path) as w:
        for row in rows:
            w.write(row)
    got = list(tfrecord_reader.tfrecord_loader(str(path), None))
    assert len(got) == 5
    for row, g in zip(rows, got, strict=True):
        assert bytes(g["image_raw"]) == row["image_raw"]
        assert bytes(g["slide"]) == b"s1"
        assert g["loc_x"].tolist() == [row["loc_x"]]
        assert g["f"].tolist() == row["f"]
    ex = example_pb2.Example.FromString(encode_example(rows[1]))
    assert ex.features.feature["loc_x"].int64_list.value == [1]
    assert ex.features.feature["slide"].bytes_list.value == [b"s1"]
