"""Issue 9, §4: the loader in the environments users run it in: Grain's ``mp_prefetch`` from
top-level code (absl flags never parsed) and folders with more TFRecords than the soft
open-file limit allows."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jaxwsi.io import TFRecordWriter

pytest.importorskip("grain")


def _write_files(folder: Path, n: int, records: int = 2) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in range(n):
        path = folder / f"s{f:03d}.tfrecords"
        with TFRecordWriter(path) as w:
            for r in range(records):
                w.write({"image_raw": bytes([f % 256, r]), "slide": f"s{f:03d}", "loc_x": r})
        paths.append(str(path))
    return paths


def _run(
    code: str, cwd: Path, limits: tuple[int, int] | None = None
) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter (no fork: JAX may be running here), with the
    open-file limits set first when given."""
    prelude = ""
    if limits is not None:
        prelude = f"import resource; resource.setrlimit(resource.RLIMIT_NOFILE, {limits})\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_mp_prefetch_works_from_top_level_code_without_absl(tmp_path):
    # Before: absl.flags UnparsedFlagAccessError in every Grain worker, unless the user's
    # script called absl's app.run or marked the flags parsed itself.
    _write_files(tmp_path, 3, records=5)
    code = """
        import glob
        import grain
        from jaxwsi.pipeline import interleaved_dataset

        paths = sorted(glob.glob("*.tfrecords"))
        ds = interleaved_dataset(paths, infinite=False, batch_size=4, rank=0, num_replicas=1,
                                 decode=False, shuffle=False, incl_slidenames=True)
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=2))
        slides = sorted(s for batch in ds for s in batch["slide"])
        print("slides", len(slides), len(set(slides)))
    """
    run = _run(code, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "slides 15 3" in run.stdout


_LOADER = """
    import glob, resource, warnings
    from jaxwsi.io import Interleaver

    warnings.simplefilter("always")
    paths = sorted(glob.glob("*.tfrecords"))
    il = Interleaver(paths, infinite=False, batch_size=len(paths) * 2, shuffle=False,
                     decode=False, rank=0, num_replicas=1)
    try:
        print("records", sum(len(b["image"]) for b in il))
    except OSError as e:
        print("error", e)
    print("soft", resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def test_a_low_soft_open_file_limit_is_raised_for_a_large_folder(tmp_path):
    _write_files(tmp_path, 150)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip(f"the hard open-file limit ({hard}) leaves nothing to raise")
    run = _run(_LOADER, tmp_path, limits=(100, hard))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "records 300" in run.stdout, run.stdout + run.stderr[-2000:]
    assert int(run.stdout.split("soft")[-1]) > 150


def test_a_hard_limit_too_low_is_named_in_the_warning_and_the_error(tmp_path):
    _write_files(tmp_path, 150)
    run = _run(_LOADER, tmp_path, limits=(100, 100))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "the open-file limit is 100" in run.stderr and "ulimit -n" in run.stderr
    (error,) = [line for line in run.stdout.splitlines() if line.startswith("error")]
    assert "Too many open files" in error and "raise the limit (`ulimit -n" in error
