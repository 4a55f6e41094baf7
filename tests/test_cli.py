"""The `jaxwsi` command: one-line errors (exit 2) instead of tracebacks, shared argument types,
help text with defaults, --version."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

import pandas as pd
import pytest

import jaxwsi
from jaxwsi.cli import _build_parser, main
from jaxwsi.errors import JaxwsiError


@pytest.fixture
def project(tmp_path, fixtures_dir):
    csv = tmp_path / "annotations.csv"
    pd.DataFrame(
        {"patient": ["P1", "P2", "P3"], "slide": ["slide_a", "slide_b", "slide_c"],
         "label": ["x", "y", "x"]}
    ).to_csv(csv, index=False)  # fmt: skip
    root = tmp_path / "p"
    assert main(["project", "create", str(root), "--annotations", str(csv)]) == 0
    return root


def add_tiles(root, fixtures_dir, label):
    tiles = root / "tfrecords" / label
    tiles.mkdir(parents=True)
    for name in ("slide_a", "slide_b", "slide_c"):
        shutil.copy(fixtures_dir / "tfrecords" / f"{name}.tfrecords", tiles)


def run(args, capsys):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--k-fold", "10"], "k-fold with k_fold=10 needs at least 10 patients, have 3"),
        (["--headers", "lable"], "outcome column 'lable' is not in the annotations (did you mean"),
        (["--strategy", "fixed"], "the fixed split needs val_fraction"),
    ],
)
def test_library_errors_are_one_line_and_exit_2(project, fixtures_dir, capsys, args, message):
    add_tiles(project, fixtures_dir, "64px_32um")
    base = ["project", "split", str(project), "--tile-px", "64", "--tile-um", "32"]
    code, out, err = run([*base, *args], capsys)
    assert code == 2
    assert err.startswith("jaxwsi: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(JaxwsiError):  # --traceback: the exception itself
        main(["--traceback", *base, *args])


def test_bad_shard_and_missing_files_are_one_line(tmp_path, fixtures_dir, capsys):
    slide = fixtures_dir / "slides" / "boxes.tiff"
    args = ["extract", str(slide), "--outdir", str(tmp_path), "--tile-px", "64", "--tile-um", "64"]
    code, _, err = run([*args, "--shard", "3/2", "--no-progress"], capsys)
    assert code == 2 and err.startswith("jaxwsi: error: ") and "shard" in err
    code, _, err = run(["project", "split", str(tmp_path / "nope"), "--tile-px", "1", "--tile-um",
                        "1"], capsys)  # fmt: skip
    assert code == 2 and "not a project" in err and "settings.json not found" in err
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(b"patient,slide\nP\xe9,s1\n")
    code, _, err = run(["project", "create", str(tmp_path / "q"), "--annotations", str(bad)],
                       capsys)  # fmt: skip
    assert code == 2 and "latin1.csv: not UTF-8 text" in err


def test_fractional_tile_um_works_for_project_split(project, fixtures_dir, capsys):
    add_tiles(project, fixtures_dir, "64px_302.5um")
    code, out, _ = run(
        ["project", "split", str(project), "--tile-px", "64", "--tile-um", "302.5"], capsys
    )
    assert code == 0 and out.count("fold ") == 3


@pytest.mark.parametrize("value", ["-4", "0", "abc"])
def test_bad_tile_um_is_a_usage_error_saying_what_is_expected(project, capsys, value):
    with pytest.raises(SystemExit) as exit_info:
        main(["project", "split", str(project), "--tile-px", "64", "--tile-um", value])
    assert exit_info.value.code == 2
    assert "tile_um must be a positive number of µm" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"jaxwsi {jaxwsi.__version__}"


def parsers(parser: argparse.ArgumentParser, path=("jaxwsi",)):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, (*path, name))


# Command groups whose options this test holds to the rule (extract, tfrecord and segment are
# checked by their own tests once their flags come from their settings objects).
CHECKED = {("jaxwsi",), ("jaxwsi", "project", "create"), ("jaxwsi", "project", "split")}


def test_every_option_has_help_and_shows_its_default():
    for path, parser in parsers(_build_parser()):
        if path not in CHECKED:
            continue
        for action in parser._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{' '.join(path)} {action.option_strings[0]} has no help"
        text = " ".join(parser.format_help().split())
        if path[-1] == "split":
            assert "(default: 3)" in text and "(default: k-fold)" in text
            assert "(default: site)" in text and "(default: 0)" in text


def test_the_command_starts_quickly_without_heavy_imports(tmp_path):
    """`jaxwsi project create` without annotations imports neither pandas nor OpenSlide."""
    code = (
        "import sys; from jaxwsi.cli import main; "
        f"assert main(['project', 'create', {str(tmp_path / 'p')!r}]) == 0; "
        "heavy = {'pandas', 'openslide', 'scipy', 'jax'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert (tmp_path / "p" / "settings.json").is_file()


def test_help_imports_no_jax():
    """`jaxwsi --help` builds every group's parser (MIL settings included) without JAX or pandas."""
    code = (
        "import sys; from jaxwsi.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "heavy = {'pandas', 'jax', 'flax', 'grain'} & set(sys.modules); assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_lazy_package_names_and_submodules():
    import jaxwsi

    code = "import sys, jaxwsi.mil as m; assert 'jax' not in sys.modules; m.mil_config; m.config"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert jaxwsi.mil.read_bag.__module__ == "jaxwsi.mil.bags"
    assert jaxwsi.slide.grid.__name__ == "jaxwsi.slide.grid"  # a submodule not in the table
    assert "train_mil" in dir(jaxwsi.mil)
    with pytest.raises(AttributeError, match="'jaxwsi.mil' has no attribute 'nope'"):
        jaxwsi.mil.nope  # noqa: B018


def test_help_lists_every_command_group(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for group in ("extract", "tfrecord", "project"):
        assert group in out
