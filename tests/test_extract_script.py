"""extract_tiles with worker processes from every kind of main program (issue 9, §2).

Each run is a real ``python`` subprocess whose main program calls `extract_tiles` at its top
level, with no ``if __name__ == "__main__":``: a plain script, ``python -m``, ``python -c`` and
code read from stdin (what a notebook cell or ``exec`` looks like: a ``__main__`` without a
file). Before the fix, spawned workers re-ran the script and died, every slide was reported as
"a worker process died" and the script exited 0 with nothing extracted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jaxwsi.cli import main
from jaxwsi.slide import ExtractionError, extract_tiles
from jaxwsi.testing import synthetic_slide

CODE = """\
from jaxwsi.slide import extract_tiles

report = extract_tiles({slides!r}, {out!r}, 64, 64, num_workers=2, progress=False)
print("ERRORS", report["error"].notna().sum(), "TILES", int(report["num_tiles"].sum()))
"""


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    folder = tmp_path_factory.mktemp("script_slides")
    return [
        str(synthetic_slide(folder / f"s{i}.tiff", width=768, height=512, mpp=0.5, seed=i))
        for i in range(2)
    ]


@pytest.fixture(scope="module")
def expected(slides, tmp_path_factory):
    """The same extraction in this process: the bytes every variant must write."""
    out = tmp_path_factory.mktemp("inline")
    report = extract_tiles(slides, out, 64, 64, num_workers=0, progress=False)
    assert report["error"].isna().all() and (report["num_tiles"] > 0).all()
    files = {name: (out / "64px_64um" / f"{name}.tfrecords").read_bytes() for name in ("s0", "s1")}
    return int(report["num_tiles"].sum()), files


def _run(args, cwd, stdin=None):
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, input=stdin, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize("how", ["script", "module", "command", "stdin"])
def test_workers_work_from_any_main_program(how, slides, expected, tmp_path):
    out = tmp_path / "out"
    code = CODE.format(slides=slides, out=str(out))
    (tmp_path / "extract_script.py").write_text(code)
    args = {
        "script": ["extract_script.py"],
        "module": ["-m", "extract_script"],
        "command": ["-c", code],
        "stdin": ["-"],
    }[how]
    result = _run(args, tmp_path, stdin=code if how == "stdin" else None)
    assert result.returncode == 0, result.stderr
    total, files = expected
    assert f"ERRORS 0 TILES {total}" in result.stdout
    for name, data in files.items():
        assert (out / "64px_64um" / f"{name}.tfrecords").read_bytes() == data


def test_project_extract_tiles_from_a_plain_script(slides, expected, tmp_path):
    import pandas as pd

    import jaxwsi

    folder = tmp_path / "slides"
    folder.mkdir()
    for path in slides:
        (folder / Path(path).name).symlink_to(path)
    annotations = pd.DataFrame({"patient": ["p0", "p1"], "slide": ["s0", "s1"]})
    jaxwsi.create_project(tmp_path / "project", annotations=annotations, slides=folder)
    code = (
        "import jaxwsi\n"
        f"project = jaxwsi.Project({str(tmp_path / 'project')!r})\n"
        "report = project.extract_tiles(64, 64, num_workers=2, progress=False)\n"
        "print('TILES', int(report['num_tiles'].sum()))\n"
    )
    (tmp_path / "project_script.py").write_text(code)
    result = _run(["project_script.py"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"TILES {expected[0]}" in result.stdout


def test_a_run_where_every_slide_fails_raises(slides, tmp_path):
    missing = str(tmp_path / "missing.svs")
    code = CODE.format(slides=[missing], out=str(tmp_path / "out"))
    result = _run(["-c", code], tmp_path)
    assert result.returncode == 1
    assert "ExtractionError: every slide failed (1 slide" in result.stderr
    assert "missing: SlideError" in result.stderr
    # The CLI: one line, exit 2 (some slides failing, the others extracted, exits 1).
    argv = ["extract", missing, "--outdir", str(tmp_path / "cli"), "--tile-px", "64",
            "--tile-um", "64", "--no-progress", "--workers", "1"]  # fmt: skip
    assert main(argv) == 2
    with pytest.raises(ExtractionError, match="every slide failed"):
        extract_tiles([missing], tmp_path / "lib", 64, 64, num_workers=0, progress=False)
    # Not when a slide asked for succeeded, even in an earlier run (only the failed one is redone).
    extract_tiles(slides[:1], tmp_path / "lib", 64, 64, num_workers=0, progress=False)
    report = extract_tiles([slides[0], missing], tmp_path / "lib", 64, 64, num_workers=0,
                           progress=False)  # fmt: skip
    assert report["error"].notna().tolist() == [True, False]  # missing, s0


def test_a_qc_callable_from_the_main_script_is_a_clear_error(slides, tmp_path):
    code = f"""\
import numpy as np
from jaxwsi.slide import extract_tiles

def my_qc(rgb):
    return np.zeros(rgb.shape[:2], bool)

extract_tiles({slides!r}, {str(tmp_path / "out")!r}, 64, 64, qc=my_qc, num_workers=1)
"""
    (tmp_path / "qc_script.py").write_text(code)
    result = _run(["qc_script.py"], tmp_path)
    assert result.returncode == 1
    assert "qc callable 'my_qc' is defined in the main script" in result.stderr
    assert "num_workers=0" in result.stderr
