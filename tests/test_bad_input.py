"""Every kind of malformed input gives TFRecordError / FileNotFoundError / PermissionError /
IsADirectoryError naming the path (and offset), from every entry point; never garbage."""

from __future__ import annotations

import gzip
import os
import random
import resource
import struct
import zlib
from pathlib import Path

import pytest

from jaxwsi.io import (
    TFRecordError,
    TFRecordWriter,
    build_index,
    iter_records_with_offsets,
    load_index,
    read_records,
    verify_files,
)

MASK_DELTA = 0xA282EAD8


def _crc32c(data: bytes) -> int:
    """Bitwise CRC32C (Castagnoli), an independent reference for the tests."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> bytes:
    crc = _crc32c(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF)


def _frame(data: bytes, length: int | None = None) -> bytes:
    header = struct.pack("<Q", len(data) if length is None else length)
    return header + _masked(header) + data + _masked(data)


def _small_file(tmp_path: Path, n: int = 3) -> Path:
    path = tmp_path / "small.tfrecords"
    with TFRecordWriter(path) as w:
        for i in range(n):
            w.write({"image_raw": bytes([i]) * (10 + i), "slide": "s", "loc_x": i, "loc_y": -i})
    return path


def _readers(path: Path):
    """Every public entry point that reads a whole file."""
    yield lambda: list(read_records(path))
    yield lambda: build_index(path, force=True)
    yield lambda: load_index(path)

    def verify():
        (report,) = verify_files([path])
        if report.error is not None:
            raise report.error

    yield verify


def test_reference_crc_matches_the_native_writer(tmp_path):
    path = tmp_path / "one.tfrecords"
    with TFRecordWriter(path) as w:
        w.write({"a": 1})
    raw = path.read_bytes()
    assert raw == _frame(raw[12:-4])


def test_truncation_at_every_byte_names_the_cut_record(tmp_path):
    raw = _small_file(tmp_path).read_bytes()
    offsets = [off for off, _, _ in iter_records_with_offsets(tmp_path / "small.tfrecords")]
    cut_path = tmp_path / "cut.tfrecords"
    for cut in range(1, len(raw)):
        cut_path.write_bytes(raw[:cut])
        complete = [o for o in offsets if o < cut]
        bad = complete[-1]
        if cut in offsets:  # the cut falls exactly between records: a clean, shorter file
            assert len(list(read_records(cut_path))) == offsets.index(cut)
            continue
        with pytest.raises(TFRecordError, match=f"truncated record at byte offset {bad}:"):
            list(read_records(cut_path))


@pytest.mark.parametrize("entry", range(4))
def test_fixture_corruptions_fail_from_every_entry_point(fixtures_dir, entry, tmp_path):
    for name, offset in [
        ("truncated", 6655),
        ("bad_length_crc", 4548),
        ("bad_data_crc", 4548),
        ("garbage", 0),
    ]:
        path = tmp_path / f"{name}.tfrecords"  # a writable copy: indexes are written beside
        path.write_bytes(
            (fixtures_dir / "tfrecords" / "corrupt" / f"{name}.tfrecords").read_bytes()
        )
        run = list(_readers(path))[entry]
        with pytest.raises(TFRecordError) as info:
            run()
        assert str(path) in str(info.value)
        assert f"byte offset {offset}" in str(info.value)
        assert not (tmp_path / f"{name}.index.npz").exists()


def test_random_garbage_is_rejected_at_offset_zero(tmp_path):
    path = tmp_path / "noise.tfrecords"
    for seed in range(200):
        path.write_bytes(random.Random(seed).randbytes(16 + seed % 20 * 7))
        with pytest.raises(TFRecordError, match="byte offset 0"):
            list(read_records(path))


@pytest.mark.parametrize(
    "header",
    [b"\x78\x9c", b"\x78\x01", b"\x08\x1d", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"],
    ids=["zlib-default", "zlib-fast", "zlib-small-window", "gzip"],
)
def test_garbage_behind_a_valid_gzip_or_zlib_header_is_a_tfrecord_error(tmp_path, header):
    # Issue 9: random bytes pass the ZLIB header check in ~2% of cases; flate2 then reports
    # the corrupt stream as InvalidInput, which surfaced as a bare OSError.
    path = tmp_path / "noise.tfrecords"
    path.write_bytes(header + random.Random(1).randbytes(40))
    with pytest.raises(TFRecordError, match=r"noise\.tfrecords: corrupted (ZLIB|GZIP) stream"):
        list(read_records(path))
    (report,) = verify_files([path])
    assert isinstance(report.error, TFRecordError)
    with pytest.raises(TFRecordError, match="noise.tfrecords"):
        build_index(path)


def test_a_rust_panic_is_an_internal_error_not_a_value_error(tmp_path):
    from jaxwsi import _native
    from jaxwsi.io import InternalError

    assert issubclass(InternalError, RuntimeError) and not issubclass(InternalError, ValueError)
    with pytest.raises(InternalError, match="internal error in jaxwsi's native code.*boom"):
        _native._panic_for_test("boom")
    assert len(list(read_records(_small_file(tmp_path)))) == 3  # the process goes on


def test_zero_length_record_is_a_valid_empty_example(tmp_path):
    path = tmp_path / "zero.tfrecords"
    path.write_bytes(_frame(b"") + _frame(b""))
    assert list(iter_records_with_offsets(path)) == [(0, 16, {}), (16, 16, {})]
    assert load_index(path).tolist() == [[0, 16], [16, 16]]


@pytest.mark.parametrize(
    ("junk", "kind"), [(b"\x00" * 5, "truncated"), (b"\x01" * 20, "length CRC")]
)
def test_trailing_junk_is_an_error_at_its_offset(tmp_path, junk, kind):
    good = _small_file(tmp_path).read_bytes()
    path = tmp_path / "junk.tfrecords"
    path.write_bytes(good + junk)
    records = []
    with pytest.raises(TFRecordError, match=f"byte offset {len(good)}") as info:
        for r in read_records(path):
            records.append(r)
    assert kind in str(info.value)
    assert len(records) == 3


def test_length_of_2_pow_40_with_valid_crc_fails_fast_without_allocating(tmp_path):
    path = tmp_path / "huge.tfrecords"
    path.write_bytes(_frame(b"x" * 64, length=1 << 40)[: 12 + 64 + 4])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for run in _readers(path):
        with pytest.raises(
            TFRecordError, match=r"truncated record at byte offset 0: needs 1099511627792"
        ):
            run()
    # Nothing near the claimed terabyte was touched (ru_maxrss is in KiB on Linux).
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 64 * 1024


def test_huge_length_inside_gzip_stream_is_refused(tmp_path):
    path = tmp_path / "huge.tfrecords.gz"
    path.write_bytes(gzip.compress(_frame(b"x" * 64, length=1 << 40)[:80]))
    with pytest.raises(TFRecordError, match="length field 1099511627776 exceeds"):
        list(read_records(path))


def test_invalid_example_inside_valid_framing_names_offset_and_field(tmp_path):
    path = tmp_path / "proto.tfrecords"
    good = _frame(b"")
    # Example -> features (len 3) -> an entry claiming 5 bytes, of which only 1 follows.
    path.write_bytes(good + _frame(b"\x0a\x03\x0a\x05\x0a"))
    with pytest.raises(TFRecordError, match=r"byte offset 16: features"):
        list(read_records(path))
    # Packed floats that are not a multiple of 4 bytes, under key "f".
    float_list = b"\x0a\x03\x00\x00\x00"
    feature = b"\x12" + bytes([len(float_list)]) + float_list
    entry = b"\x0a\x01f\x12" + bytes([len(feature)]) + feature
    features = b"\x0a" + bytes([len(entry)]) + entry
    path.write_bytes(_frame(b"\x0a" + bytes([len(features)]) + features))
    with pytest.raises(TFRecordError, match=r"feature\[f\]\.float_list: packed floats"):
        list(read_records(path))
    (report,) = verify_files([path])
    assert isinstance(report.error, TFRecordError)
    assert verify_files([path], parse=False)[0].ok


def test_empty_file_is_fine_everywhere(tmp_path):
    path = tmp_path / "empty.tfrecords"
    path.write_bytes(b"")
    assert list(read_records(path)) == []
    assert load_index(path).shape == (0, 2)
    (report,) = verify_files([path])
    assert report.ok and report.records == 0


def test_missing_file(tmp_path):
    path = tmp_path / "missing.tfrecords"
    for run in _readers(path):
        with pytest.raises(FileNotFoundError) as info:
            run()
        assert info.value.filename == str(path)


def test_directory(tmp_path):
    for run in _readers(tmp_path):
        with pytest.raises(IsADirectoryError) as info:
            run()
        assert info.value.filename == str(tmp_path)


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="running as root: chmod 000 does not deny reading, so there is nothing to test",
)
def test_unreadable_file(tmp_path):
    path = _small_file(tmp_path)
    path.chmod(0)
    try:
        for run in _readers(path):
            with pytest.raises(PermissionError) as info:
                run()
            assert info.value.filename == str(path)
    finally:
        path.chmod(0o644)


def test_gzip_and_zlib_files_read_as_streams_but_cannot_be_indexed(tmp_path):
    plain = _small_file(tmp_path)
    expected = list(read_records(plain))
    for suffix, compress in [(".gz", gzip.compress), (".zlib", zlib.compress)]:
        path = tmp_path / f"small.tfrecords{suffix}"
        path.write_bytes(compress(plain.read_bytes()))
        got = list(read_records(path))
        assert len(got) == len(expected)
        for a, b in zip(got, expected, strict=True):
            assert a["image_raw"] == b["image_raw"]
            assert a["loc_x"].tolist() == b["loc_x"].tolist()
        (report,) = verify_files([path])
        assert (
            report.ok
            and report.records == 3
            and report.compression == suffix[1:].replace("gz", "gzip")
        )
        with pytest.raises(TFRecordError, match="compressed TFRecord"):
            build_index(path)


def test_corrupt_gzip_stream_is_an_error_not_garbage(tmp_path):
    data = gzip.compress(_small_file(tmp_path).read_bytes())
    path = tmp_path / "bad.tfrecords.gz"
    path.write_bytes(data[: len(data) // 2])  # cut mid-stream
    with pytest.raises(TFRecordError, match=str(path)):
        list(read_records(path))
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(flipped))
    with pytest.raises(TFRecordError):
        list(read_records(path))


def test_non_utf8_feature_key_is_rejected(tmp_path):
    entry = b"\x0a\x01\xff\x12\x02\x0a\x00"
    features = b"\x0a" + bytes([len(entry)]) + entry
    path = tmp_path / "key.tfrecords"
    path.write_bytes(_frame(b"\x0a" + bytes([len(features)]) + features))
    with pytest.raises(TFRecordError, match="not UTF-8"):
        list(read_records(path))
