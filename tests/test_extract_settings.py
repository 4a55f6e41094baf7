"""ExtractionSettings: one object, one default per setting, recorded per output folder (issue 9).

Before: `--jpeg-quality 95` and `60` into one folder both succeeded and left a silent mixture;
the report left out half the settings; CLI flags repeated every default as a literal.
"""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from jaxwsi.cli import _build_parser, main
from jaxwsi.slide import ExtractionSettings, SettingsMismatchError, extract_tiles
from jaxwsi.slide.report import REPORT_COLUMNS
from jaxwsi.testing import synthetic_slide


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    folder = tmp_path_factory.mktemp("settings_slides")
    return synthetic_slide(folder / "s0.tiff", width=512, height=512, mpp=0.5, seed=0)


def test_other_settings_into_the_same_folder_are_refused(slide, tmp_path):
    extract_tiles([slide], tmp_path, 64, 64, num_workers=0, progress=False)
    out = tmp_path / "64px_64um"
    before = (out / "s0.tfrecords").read_bytes()
    recorded = json.loads((out / "extraction_settings.json").read_text())
    assert recorded == ExtractionSettings(tile_px=64, tile_um=64).record()
    with pytest.raises(SettingsMismatchError) as raised:
        extract_tiles([slide], tmp_path, 64, 64, jpeg_quality=60, grayspace_fraction=0.5,
                      overwrite=True, num_workers=0, progress=False)  # fmt: skip
    message = str(raised.value)
    assert str(out) in message
    assert "jpeg_quality=95 there, 60 asked" in message
    assert "grayspace_fraction=0.6 there, 0.5 asked" in message
    assert (out / "s0.tfrecords").read_bytes() == before  # nothing touched
    # The same settings (302 and 302.0 are one size) go on; another folder takes the others.
    extract_tiles([slide], tmp_path, 64, 64.0, num_workers=0, progress=False)
    report = extract_tiles([slide], tmp_path / "q60", 64, 64, jpeg_quality=60, num_workers=0,
                           progress=False)  # fmt: skip
    assert report["jpeg_quality"].tolist() == [60]


def test_cli_refuses_other_settings_with_one_line(slide, tmp_path, capsys):
    argv = ["extract", str(slide), "--outdir", str(tmp_path), "--tile-px", "64", "--tile-um",
            "64", "--workers", "0", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert main([*argv, "--jpeg-quality", "60"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "jpeg_quality=95 there, 60 asked" in err


def test_report_records_every_setting(slide, tmp_path):
    settings = ExtractionSettings(tile_px=32, tile_um="10x", jpeg_quality=70, seed=3,
                                  whitespace_fraction=0.9, level_rule="slideflow")  # fmt: skip
    report = extract_tiles([slide], tmp_path, settings=settings, num_workers=0, progress=False)
    csv = pd.read_csv(tmp_path / "32px_10x" / "extraction_report.csv")
    assert list(csv.columns) == list(REPORT_COLUMNS)
    for f in dataclasses.fields(ExtractionSettings):
        assert f.name in REPORT_COLUMNS
    row = csv.iloc[0]
    assert (row["jpeg_quality"], row["seed"], row["level_rule"]) == (70, 3, "slideflow")
    assert (row["whitespace_fraction"], row["filter_rule"], row["img_format"]) == (
        0.9, "thumbnail", "jpg"
    )  # fmt: skip
    assert row["mpp"] == 0.5  # the µm per pixel used, from the slide
    # The keyword form builds the same object: same tiles.
    again = extract_tiles([slide], tmp_path / "kw", 32, "10x", jpeg_quality=70, seed=3,
                          whitespace_fraction=0.9, level_rule="slideflow", num_workers=0,
                          progress=False)  # fmt: skip
    a = (tmp_path / "32px_10x" / "s0.tfrecords").read_bytes()
    assert a == (tmp_path / "kw" / "32px_10x" / "s0.tfrecords").read_bytes()
    assert report["num_tiles"].tolist() == again["num_tiles"].tolist()


def test_unknown_options_and_missing_roi_dir_are_named(slide, tmp_path):
    with pytest.raises(TypeError, match="unknown extract_tiles option 'jpeg_qualty'.*jpeg_quality"):
        extract_tiles([slide], tmp_path, 64, 64, jpeg_qualty=60)
    with pytest.raises(FileNotFoundError, match="roi_dir: folder not found: .*no_rois"):
        extract_tiles([slide], tmp_path, 64, 64, roi_dir=tmp_path / "no_rois")
    with pytest.raises(ValueError, match="grayspace_fraction must be in"):
        ExtractionSettings(tile_px=64, tile_um=64, grayspace_fraction=2)


def test_cli_options_come_from_the_settings_object():
    parser = _build_parser("extract")
    args = parser.parse_args(["extract", "a.svs", "--outdir", "o", "--tile-px", "64",
                              "--tile-um", "302.5"])  # fmt: skip
    for f in dataclasses.fields(ExtractionSettings):
        if f.default is not dataclasses.MISSING:
            assert getattr(args, f.name) == f.default, f.name  # the one default
    assert (args.tile_px, args.tile_um) == (64, 302.5)
    others = {"--qc": "otsu", "--mpp": "0.25", "--stride-div": "2", "--level-rule": "slideflow",
              "--whitespace-threshold": "220.5", "--img-format": "png"}  # fmt: skip
    argv = ["extract", "a.svs", "--outdir", "o", "--tile-px", "64", "--tile-um", "10x",
            "--edge-tiles", *[word for pair in others.items() for word in pair]]  # fmt: skip
    args = parser.parse_args(argv)
    settings = ExtractionSettings(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(ExtractionSettings)}
    )
    assert (settings.qc, settings.mpp, settings.stride_div, settings.use_edge_tiles) == (
        "otsu", 0.25, 2, True
    )  # fmt: skip
    assert (settings.whitespace_threshold, settings.img_format, settings.tile_um) == (
        220.5, "png", "10x"
    )  # fmt: skip
    sub = next(a for a in parser._actions if a.dest == "command").choices["extract"]
    for action in sub._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, action.option_strings  # every option says what it does
    help_text = sub.format_help()
    assert "JPEG quality (1-100) (default: 95)" in help_text


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--tile-um", "-4", "argument --tile-um: tile_um must be a positive number of µm"),
        ("--roi-dir", "/no/such/rois", "argument --roi-dir: folder not found: /no/such/rois"),
        ("--img-format", "gif", "argument --img-format: invalid choice: 'gif'"),
    ],
)
def test_bad_cli_values_are_named(option, value, expected, capsys):
    argv = ["extract", "a.svs", "--outdir", "o", "--tile-px", "64", "--tile-um", "64"]
    with pytest.raises(SystemExit) as raised:
        main([*argv, option, value])
    assert raised.value.code == 2
    assert expected in capsys.readouterr().err
