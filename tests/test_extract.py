"""extract_tiles and `jaxwsi extract`: records, index, shuffle, workers, resume, reports."""

from __future__ import annotations

import io
import json
import os
import threading
from pathlib import Path

import numpy as np
import openslide
import pandas as pd
import pytest
from PIL import Image

from jaxwsi.cli import main
from jaxwsi.io import load_index, load_locations, read_records
from jaxwsi.slide import WSI, ExtractionError, extract_tiles, select_shard
from jaxwsi.slide import extract as extract_module
from jaxwsi.slide.report import REPORT_COLUMNS
from jaxwsi.slide.wsi import rgba_to_rgb
from jaxwsi.testing import synthetic_slide


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slides")
    return [
        synthetic_slide(folder / f"slide{i}.tiff", width=1280, height=1024, mpp=0.5,
                        tissue_class=i, seed=i, num_levels=2)
        for i in range(2)
    ]  # fmt: skip


def _records(path):
    return list(read_records(path))


def _decode(record):
    return np.asarray(Image.open(io.BytesIO(record["image_raw"])).convert("RGB"))


def _expected_tile(slide_path, loc, full_px, level, extract_px):
    corner = (int(loc[0]) - full_px // 2, int(loc[1]) - full_px // 2)
    with openslide.OpenSlide(slide_path) as slide:
        return rgba_to_rgb(np.asarray(slide.read_region(corner, level, (extract_px, extract_px))))


def test_png_tiles_equal_read_region_at_stored_location(slides, tmp_path):
    report = extract_tiles(slides, tmp_path, 64, 64, img_format="png", num_workers=0,
                           progress=False)  # fmt: skip
    assert report["error"].isna().all()
    out = tmp_path / "64px_64um"
    for slide_path, row in zip(slides, report.itertuples(), strict=True):
        records = _records(out / f"{row.slide}.tfrecords")
        with WSI(slide_path, 64, 64) as wsi:
            expected_count = int(wsi.select_tiles().keep.sum())
        assert len(records) == row.num_tiles == expected_count > 0
        for record in records[:: max(1, len(records) // 8)]:
            assert record["slide"] == row.slide.encode()
            loc = (record["loc_x"][0], record["loc_y"][0])
            expected = _expected_tile(slide_path, loc, full_px=128, level=1, extract_px=64)
            np.testing.assert_array_equal(_decode(record), expected)
        # The index matches the records, with their locations.
        locations = np.array([[r["loc_x"][0], r["loc_y"][0]] for r in records])
        assert load_index(out / f"{row.slide}.tfrecords").shape == (len(records), 2)
        np.testing.assert_array_equal(load_locations(out / f"{row.slide}.tfrecords"), locations)
        # Shuffled: not in the grid's row-major order.
        row_major = np.lexsort((locations[:, 0], locations[:, 1]))
        assert not np.array_equal(row_major, np.arange(len(locations)))


def test_jpeg_tiles_resized_and_close_to_read_region(slides, tmp_path):
    extract_tiles(slides[:1], tmp_path, 48, 96, num_workers=0, progress=False)
    records = _records(tmp_path / "48px_96um" / "slide0.tfrecords")
    assert records[0]["image_raw"][:3] == b"\xff\xd8\xff"  # JPEG
    for record in records[:10]:
        tile = _decode(record)
        assert tile.shape == (48, 48, 3)
        loc = (record["loc_x"][0], record["loc_y"][0])
        # 96 µm = 192 level-0 px: level 1 (2x) read at 96 px, resized to 48.
        raw = _expected_tile(slides[0], loc, full_px=192, level=1, extract_px=96)
        expected = np.asarray(Image.fromarray(raw).resize((48, 48), Image.Resampling.LANCZOS))
        assert np.abs(tile.astype(int) - expected).mean() < 4


def test_spawned_workers_write_the_same_bytes_and_seed_sets_order(slides, tmp_path):
    extract_tiles(slides, tmp_path / "a", 64, 64, num_workers=0, progress=False)
    extract_tiles(slides, tmp_path / "b", 64, 64, num_workers=2, progress=False)
    extract_tiles(slides, tmp_path / "c", 64, 64, num_workers=0, seed=1, progress=False)
    for name in ("slide0", "slide1"):
        a, b, c = (tmp_path / d / "64px_64um" / f"{name}.tfrecords" for d in "abc")
        assert a.read_bytes() == b.read_bytes()
        locs_a = load_locations(a)
        locs_c = load_locations(c)
        assert not np.array_equal(locs_a, locs_c)
        assert sorted(map(tuple, locs_a)) == sorted(map(tuple, locs_c))


def test_errors_reported_and_others_go_on(slides, fixtures_dir, tmp_path):
    bad = [fixtures_dir / "slides" / "unreadable.svs", fixtures_dir / "slides" / "unopenable.tiff",
           tmp_path / "missing.svs"]  # fmt: skip
    report = extract_tiles([*bad, *slides], tmp_path, 64, 64, num_workers=0, progress=False)
    errors = dict(zip(report["slide"], report["error"].fillna(""), strict=True))
    assert "Bogus marker length" in errors["unreadable"]
    assert "52479" in errors["unopenable"]
    assert "slide file not found" in errors["missing"]
    assert errors["slide0"] == errors["slide1"] == ""
    out = tmp_path / "64px_64um"
    assert not (out / "unreadable.tfrecords").exists()
    csv = pd.read_csv(out / "extraction_report.csv")
    assert list(csv.columns) == list(REPORT_COLUMNS)
    assert sorted(csv["slide"]) == ["missing", "slide0", "slide1", "unopenable", "unreadable"]
    assert (csv.set_index("slide").loc[["slide0", "slide1"], "mpp"] == 0.5).all()
    page = (out / "extraction_report.html").read_text()
    assert all(name in page for name in csv["slide"])
    assert "Bogus marker length" in page
    for name in ("slide0", "slide1"):
        thumbnail = Image.open(out / "report" / f"{name}.png")
        assert max(thumbnail.size) <= 1024
        assert f'src="report/{name}.png"' in page


def test_rerun_skips_finished_and_redoes_interrupted(slides, tmp_path, fixtures_dir):
    unreadable = fixtures_dir / "slides" / "unreadable.svs"
    extract_tiles([*slides, unreadable], tmp_path, 64, 64, num_workers=0, progress=False)
    out = tmp_path / "64px_64um"
    first = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tfrecords")}
    # An interrupted slide: its TFRecord was written but not its report entry.
    (out / "report" / "slide1.json").unlink()
    report = extract_tiles([*slides, unreadable], tmp_path, 64, 64, num_workers=0,
                           progress=False)  # fmt: skip
    second = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tfrecords")}
    assert second["slide0.tfrecords"] == first["slide0.tfrecords"]
    assert second["slide1.tfrecords"] != first["slide1.tfrecords"]
    assert report.set_index("slide").loc["slide1", "num_tiles"] > 0
    assert "Bogus" in report.set_index("slide").loc["unreadable", "error"]  # failed: retried
    extract_tiles(slides, tmp_path, 64, 64, num_workers=0, overwrite=True, progress=False)
    assert (out / "slide0.tfrecords").stat().st_mtime_ns != first["slide0.tfrecords"]


def test_slide_without_tissue_gives_an_empty_finished_record(tmp_path):
    blank = synthetic_slide(tmp_path / "blank.tiff", width=512, height=512, tissue_fraction=0)
    report = extract_tiles([blank], tmp_path / "out", 64, 64, num_workers=0, progress=False)
    assert report["num_tiles"].tolist() == [0]
    assert report["error"].isna().all()
    assert _records(tmp_path / "out" / "64px_64um" / "blank.tfrecords") == []


def test_shards_split_the_slide_list(tmp_path):
    paths = [tmp_path / f"{name}.svs" for name in "edcba"]
    shards = [select_shard(paths, (i, 2)) for i in range(2)]
    assert [p.stem for p in shards[0]] == ["a", "c", "e"]
    assert [p.stem for p in shards[1]] == ["b", "d"]
    with pytest.raises(ValueError, match="shard"):
        select_shard(paths, (2, 2))


def test_magnification_label_rois_and_cli(slides, tmp_path, fixtures_dir):
    roi_dir = tmp_path / "rois"
    roi_dir.mkdir()
    (roi_dir / "slide0.csv").write_bytes((fixtures_dir / "rois" / "nested.csv").read_bytes())
    argv = ["extract", *map(str, slides), "--outdir", str(tmp_path / "out"), "--tile-px", "32",
            "--tile-um", "10x", "--roi-dir", str(roi_dir), "--roi-method", "inside",
            "--workers", "0", "--no-progress", "--shard", "0/1"]  # fmt: skip
    assert main(argv) == 1  # slide1 has no ROI file: roi_method inside fails for it
    out = tmp_path / "out" / "32px_10x"
    report = pd.read_csv(out / "extraction_report.csv").set_index("slide")
    assert "no ROIs" in report.loc["slide1", "error"]
    assert report.loc["slide0", "num_rois"] == 3
    records = _records(out / "slide0.tfrecords")
    assert 0 < len(records) == report.loc["slide0", "num_tiles"]
    sidecar = json.loads((out / "report" / "slide0.json").read_text())
    assert sidecar["roi_method"] == "inside"
    assert sidecar["roi_files"] == str(roi_dir / "slide0.csv")
    assert pd.isna(report.loc["slide1", "roi_files"])
    # Every centre lies in the outer square (100-900) or the triangle, not in the hole's ring.
    for record in records:
        x, y = record["loc_x"][0], record["loc_y"][0]
        in_hole = 300 < x < 700 and 300 < y < 700 and not (450 < x < 550 and 450 < y < 550)
        assert not in_hole
    auto = [*argv[:-2], "--roi-method", "auto"]
    auto[auto.index("--outdir") + 1] = str(tmp_path / "auto")  # other settings, other folder
    assert main(auto) == 0


def crash_on_small_slides(rgb):
    """QC callable that kills its worker process on slides under 600 px wide (thumbnail)."""
    if rgb.shape[1] * 2 < 600:
        os._exit(3)
    return np.zeros(rgb.shape[:2], bool)


def test_worker_crash_is_reported_and_extraction_goes_on(slides, tmp_path):
    small = synthetic_slide(tmp_path / "small.tiff", width=512, height=512, seed=9)
    report = extract_tiles([small, *slides], tmp_path / "out", 64, 64, num_workers=1,
                           qc=crash_on_small_slides, progress=False)  # fmt: skip
    errors = dict(zip(report["slide"], report["error"].fillna(""), strict=True))
    assert "worker process died" in errors["small"]
    assert "exited with code 3" in errors["small"]
    # One task per worker at a time: only the slide whose task crashed fails; a new worker
    # takes the dead one's place and the others are extracted.
    assert errors["slide0"] == errors["slide1"] == ""
    for name, error in errors.items():  # failed slides leave no TFRecord behind
        assert (tmp_path / "out" / "64px_64um" / f"{name}.tfrecords").exists() == (error == "")
    assert (report.set_index("slide").loc[["slide0", "slide1"], "num_tiles"] > 0).all()


def hang_on_small_slides(rgb):
    """QC callable that, on slides under 600 px wide (thumbnail), says so by a file named after
    its process in $JAXWSI_TEST_HANG_DIR and then hangs until its worker is killed."""
    if rgb.shape[1] * 2 < 600:
        (Path(os.environ["JAXWSI_TEST_HANG_DIR"]) / str(os.getpid())).touch()
        threading.Event().wait()
    return np.zeros(rgb.shape[:2], bool)


def test_a_hung_worker_is_killed_reported_and_extraction_goes_on(slides, tmp_path, monkeypatch):
    # The stall clock stands still until the worker has provably hung, then jumps past the
    # timeout: the test does not depend on how fast anything runs.
    hang_dir = tmp_path / "hung"
    hang_dir.mkdir()
    monkeypatch.setenv("JAXWSI_TEST_HANG_DIR", str(hang_dir))
    monkeypatch.setattr(extract_module, "_clock", lambda: 1e9 if any(hang_dir.iterdir()) else 0.0)
    small = synthetic_slide(tmp_path / "small.tiff", width=512, height=512, seed=9)
    report = extract_tiles([small, *slides], tmp_path / "out", 64, 64, num_workers=1,
                           qc=hang_on_small_slides, progress=False, stall_timeout=60)  # fmt: skip
    errors = dict(zip(report["slide"], report["error"].fillna(""), strict=True))
    assert "ran over stall_timeout=60 s" in errors["small"]
    assert errors["slide0"] == errors["slide1"] == ""
    for name, error in errors.items():
        assert (tmp_path / "out" / "64px_64um" / f"{name}.tfrecords").exists() == (error == "")
    (hung,) = [int(p.name) for p in hang_dir.iterdir()]
    assert not _alive(hung)  # killed, not left hanging


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_failed_re_extraction_removes_the_earlier_tfrecord(slides, tmp_path):
    extract_tiles(slides[:1], tmp_path, 64, 64, num_workers=0, progress=False)
    tfrecord = tmp_path / "64px_64um" / "slide0.tfrecords"
    assert tfrecord.exists()

    def failing_qc(rgb):
        raise RuntimeError("QC failed")

    # Only QC fails, so the folder's settings record differs in qc: start a fresh record.
    (tmp_path / "64px_64um" / "extraction_settings.json").unlink()
    with pytest.raises(ExtractionError, match="every slide failed .*slide0: RuntimeError: QC"):
        extract_tiles(slides[:1], tmp_path, 64, 64, num_workers=0, qc=failing_qc,
                      overwrite=True, progress=False)  # fmt: skip
    report = pd.read_csv(tmp_path / "64px_64um" / "extraction_report.csv")
    assert report["error"].tolist() == ["RuntimeError: QC failed"]
    assert not tfrecord.exists()
    assert not (tmp_path / "64px_64um" / "slide0.index.npz").exists()
