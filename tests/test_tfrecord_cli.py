"""`jaxwsi tfrecord info|verify|index|dump` on the fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from jaxwsi.cli import main


@pytest.fixture
def tf_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "tfrecords"


def test_info_prints_records_slides_format_and_tile_size(tf_dir, capsys):
    assert (
        main(
            [
                "tfrecord",
                "info",
                str(tf_dir / "slide_b.tfrecords"),
                str(tf_dir / "png_tiles.tfrecords"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "records:      25" in out
    assert "slides:       slide_b (25)" in out
    assert "image format: jpeg (25)" in out
    assert "records:      5" in out
    assert "image format: png (5)" in out
    assert out.count("tile size:    64x64") == 2


def test_verify_names_each_bad_file_and_offset(tf_dir, capsys):
    files = [tf_dir / "slide_a.tfrecords", *sorted((tf_dir / "corrupt").glob("*.tfrecords"))]
    assert main(["tfrecord", "verify", *map(str, files)]) == 1
    out = capsys.readouterr().out
    assert f"OK  {tf_dir / 'slide_a.tfrecords'}: 10 records" in out
    for name, offset in [
        ("bad_data_crc", 4548),
        ("bad_length_crc", 4548),
        ("garbage", 0),
        ("truncated", 6655),
    ]:
        line = next(line for line in out.splitlines() if f"{name}.tfrecords:" in line)
        assert line.startswith("BAD ") and f"byte offset {offset}" in line
    assert "1 ok, 4 bad" in out
    assert main(["tfrecord", "verify", str(tf_dir / "slide_c.tfrecords")]) == 0


def test_index_writes_npz_and_reports_failures(tf_dir, tmp_path, capsys):
    good = tmp_path / "slide_c.tfrecords"
    shutil.copy(tf_dir / "slide_c.tfrecords", good)
    missing = tmp_path / "missing.tfrecords"
    assert main(["tfrecord", "index", str(good), str(missing)]) == 1
    out = capsys.readouterr().out
    assert f"OK  {good} -> {tmp_path / 'slide_c.index.npz'}" in out
    assert f"BAD {missing}: FileNotFoundError" in out
    with np.load(tmp_path / "slide_c.index.npz") as npz:
        assert npz["arr_0"].shape == (7, 2)


def test_dump_shows_offsets_and_values(tf_dir, capsys):
    assert main(["tfrecord", "dump", "--limit", "1", str(tf_dir / "slide_a.tfrecords")]) == 0
    out = capsys.readouterr().out
    assert "record 0 at byte offset 0 (2283 bytes framed)" in out
    assert "slide: 'slide_a'" in out
    assert "loc_x: int64[48]" in out
    assert "image_raw: <jpeg image, 2187 bytes>" in out
    assert "record 1" not in out
