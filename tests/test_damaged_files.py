"""Issue 9, §3: one damaged TFRecord (truncated, a bad record) or a damaged ``.index.npz`` must
not stop every file. ``on_error="skip"`` indexes what is readable and reports the damage;
``"raise"`` names every damaged file; a damaged index is stale and is rebuilt."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import jaxwsi
from jaxwsi.io import (
    Damaged,
    Interleaver,
    TFRecordError,
    TFRecordWriter,
    build_index,
    index_path,
    iter_records_with_offsets,
    load_index,
    load_indexes,
)
from jaxwsi.pipeline import interleaved_dataset

pytest.importorskip("grain")


def _copy_fixtures(fixtures_dir: Path, tmp_path: Path) -> dict[str, Path]:
    """Copies of the good slides and of the truncated / bad-CRC fixtures, without indexes."""
    src = fixtures_dir / "tfrecords"
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in ("slide_a", "slide_b", "slide_c"):
        out[name] = tmp_path / f"{name}.tfrecords"
        shutil.copy(src / f"{name}.tfrecords", out[name])
    out["trunc"] = tmp_path / "trunc.tfrecords"
    shutil.copy(src / "corrupt" / "truncated.tfrecords", out["trunc"])
    out["badcrc"] = tmp_path / "badcrc.tfrecords"
    shutil.copy(src / "corrupt" / "bad_data_crc.tfrecords", out["badcrc"])
    return out


def _record_offsets(path: Path) -> list[int]:
    offsets = []
    try:
        for offset, _, _ in iter_records_with_offsets(path):
            offsets.append(offset)
    except TFRecordError:
        pass
    return offsets


def _make(paths, **options):
    return Interleaver([str(p) for p in paths], rank=0, num_replicas=1, **options)


def test_skip_indexes_what_is_readable_and_reports_the_damage(fixtures_dir, tmp_path):
    files = _copy_fixtures(fixtures_dir, tmp_path)
    good = [files["slide_a"], files["slide_b"]]
    paths = [*good, files["trunc"], files["badcrc"]]
    readable = {p: _record_offsets(p) for p in paths}
    with pytest.warns(RuntimeWarning, match="2 damaged TFRecord") as caught:
        il = _make(paths, on_error="skip", infinite=False, shuffle=False, batch_size=8,
                   incl_loc=True, incl_slidenames=True, decode=False)  # fmt: skip
        damaged = il.damaged
    text = str(caught[0].message)
    assert str(files["trunc"]) in text and str(files["badcrc"]) in text
    assert [d.path for d in damaged] == [str(files["trunc"]), str(files["badcrc"])]
    assert all(isinstance(d, Damaged) for d in damaged)
    # The offset is that of the first bad record: right after the last readable one.
    for d in damaged:
        last = readable[Path(d.path)][-1]
        assert d.offset > last and f"byte offset {d.offset}" in d.message
    assert "TFRecordError" in damaged[0].message and "truncated" in damaged[0].message
    # Every readable record of every file comes out, once; the good files are whole.
    batches = list(il)
    n = sum(len(b["image"]) for b in batches)
    assert n == sum(len(v) for v in readable.values())
    assert n == len(il.shard_records()[0])
    # Good files got their index saved; the damaged ones did not (they would be stale).
    assert all(index_path(p).is_file() for p in good)
    assert not index_path(files["trunc"]).exists() and not index_path(files["badcrc"]).exists()


def test_raise_names_every_damaged_file_not_only_the_first(fixtures_dir, tmp_path):
    files = _copy_fixtures(fixtures_dir, tmp_path)
    paths = [files["slide_a"], files["trunc"], files["slide_b"], files["badcrc"]]
    with pytest.raises(TFRecordError, match="2 TFRecords are damaged") as info:
        next(iter(_make(paths)))
    message = str(info.value)
    assert str(files["trunc"]) in message and str(files["badcrc"]) in message
    with pytest.raises(TFRecordError, match="2 TFRecords are damaged"):
        load_indexes(paths)
    # One damaged file raises its own error, naming the file and offset.
    with pytest.raises(TFRecordError, match=r"trunc\.tfrecords: truncated record at byte offset"):
        next(iter(_make([files["slide_a"], files["trunc"]])))


def test_interleaved_dataset_and_dataset_skip_damaged_files(fixtures_dir, tmp_path):
    files = _copy_fixtures(fixtures_dir, tmp_path / "tfrecords")
    files["trunc"].rename(tmp_path / "tfrecords" / "slide_d.tfrecords")
    files["badcrc"].unlink()
    trunc = tmp_path / "tfrecords" / "slide_d.tfrecords"
    paths = [files["slide_a"], files["slide_b"], trunc]
    with pytest.warns(RuntimeWarning, match="slide_d.tfrecords"):
        ds = interleaved_dataset(
            [str(p) for p in paths], on_error="skip", infinite=False, batch_size=16,
            rank=0, num_replicas=1, decode=False,
        )  # fmt: skip
        batches = list(ds)
        assert [d.path for d in ds.damaged] == [str(trunc)]
    assert sum(len(b["image"]) for b in batches) == sum(len(_record_offsets(p)) for p in paths)

    annotations = tmp_path / "annotations.csv"
    rows = ["patient,slide,label"] + [f"p{s},slide_{s},{i % 2}" for i, s in enumerate("abcd")]
    annotations.write_text("\n".join(rows) + "\n")
    with pytest.warns(RuntimeWarning, match="slide_d.tfrecords"):
        dataset = jaxwsi.Dataset(annotations=annotations, tfrecords=tmp_path / "tfrecords")
    with pytest.raises(TFRecordError, match="slide_d.tfrecords"):
        next(iter(dataset.interleaver("label", rank=0, num_replicas=1)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        il = dataset.interleaver("label", rank=0, num_replicas=1, on_error="skip",
                                 infinite=False, batch_size=32, decode=False)  # fmt: skip
        total = sum(len(b["image"]) for b in il)
    assert [Path(d.path).name for d in il.damaged] == ["slide_d.tfrecords"]
    assert total == sum(len(_record_offsets(p)) for p in [*paths, files["slide_c"]])


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_a_damaged_index_file_is_stale_and_rebuilt(fixtures_dir, tmp_path, damage):
    tfrecord = tmp_path / "slide_a.tfrecords"
    shutil.copy(fixtures_dir / "tfrecords" / "slide_a.tfrecords", tfrecord)
    index = Path(build_index(tfrecord))
    good = index.read_bytes()
    expected = load_index(tfrecord)
    damaged = {"empty": b"", "truncated": good[: len(good) // 2], "garbage": b"PK\x03\x04junk"}
    for entry in ("load_index", "loader", "cli"):
        index.write_bytes(damaged[damage])
        if entry == "load_index":
            np.testing.assert_array_equal(load_index(tfrecord), expected)
        elif entry == "loader":
            batch = next(iter(_make([tfrecord], batch_size=4, decode=False)))
            assert len(batch["image"]) == 4
        else:
            run = subprocess.run(
                [sys.executable, "-m", "jaxwsi", "tfrecord", "index", str(tfrecord)],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert run.returncode == 0, run.stdout + run.stderr
            assert run.stdout.startswith("OK")
        # Rebuilt in place: a readable, current index again.
        with np.load(index) as npz:
            np.testing.assert_array_equal(npz["arr_0"], expected)


def test_a_damaged_index_in_a_read_only_folder_is_rebuilt_in_memory(fixtures_dir, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    tfrecord = folder / "slide_a.tfrecords"
    shutil.copy(fixtures_dir / "tfrecords" / "slide_a.tfrecords", tfrecord)
    expected = load_index(tfrecord)
    index_path(tfrecord).write_bytes(b"")
    folder.chmod(0o555)
    try:
        with pytest.warns(UserWarning, match="index not saved"):
            np.testing.assert_array_equal(load_index(tfrecord), expected)
    finally:
        folder.chmod(0o755)
    assert index_path(tfrecord).read_bytes() == b""  # left alone


def test_writer_into_a_missing_folder_names_the_folder(tmp_path):
    missing = tmp_path / "no" / "such"
    with pytest.raises(FileNotFoundError) as info:
        TFRecordWriter(missing / "a.tfrecords")
    assert info.value.filename == str(missing)
    assert ".tmp-" not in str(info.value)
