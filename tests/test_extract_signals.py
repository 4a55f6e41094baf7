"""SIGKILL and SIGTERM of a real extraction (issue 9, §3): no worker outlives its parent, and the
next run removes the killed run's hidden temporary files and completes.

The parent is a plain script (run as a subprocess) whose QC callable, in every worker, writes a
file named after the worker's PID and then hangs while ``$HANG_DIR`` is set: when both files
exist, both workers are provably busy and the parent is signalled. Timeouts below are only a
safety net for a broken build, never what is tested.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jaxwsi.testing import synthetic_slide

QC_MODULE = """\
import os
import threading
from pathlib import Path

import numpy as np


def hang(rgb):
    if "HANG_DIR" in os.environ:
        (Path(os.environ["HANG_DIR"]) / str(os.getpid())).touch()
        threading.Event().wait()
    return np.zeros(rgb.shape[:2], bool)
"""

SCRIPT = """\
from hang_qc import hang
from jaxwsi.slide import extract_tiles

report = extract_tiles({slides!r}, "out", 64, 64, qc=hang, num_workers=2, progress=False)
print("TILES", int(report["num_tiles"].sum()))
"""

SAFETY_S = 120


@pytest.fixture
def workdir(tmp_path):
    slides = [
        str(synthetic_slide(tmp_path / f"s{i}.tiff", width=512, height=512, mpp=0.5, seed=i))
        for i in range(2)
    ]
    (tmp_path / "hang_qc.py").write_text(QC_MODULE)
    (tmp_path / "extract_script.py").write_text(SCRIPT.format(slides=slides))
    (tmp_path / "hung").mkdir()
    return tmp_path


def _start_hung_extraction(workdir):
    """The parent, once both of its workers hang in QC, and the workers' PIDs."""
    env = {**os.environ, "HANG_DIR": str(workdir / "hung")}
    parent = subprocess.Popen(
        [sys.executable, "extract_script.py"], cwd=workdir, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + SAFETY_S
    while len(list((workdir / "hung").iterdir())) < 2:
        if parent.poll() is not None or time.monotonic() > deadline:
            parent.kill()
            pytest.fail(f"workers never started: {parent.communicate()}")
        time.sleep(0.1)
    workers = {int(p.name) for p in (workdir / "hung").iterdir()}
    assert _children(parent.pid) == workers  # no resource tracker or other helper process
    return parent, workers


def _children(pid):
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def _alive(pid):
    """Running (a zombie waiting to be reaped counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _temporary_files(out):
    return sorted(p.name for p in out.rglob(".*") if p.is_file())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkill_of_the_parent_kills_its_workers_and_the_next_run_cleans_up(workdir):
    parent, workers = _start_hung_extraction(workdir)
    parent.send_signal(signal.SIGKILL)
    parent.communicate(timeout=SAFETY_S)
    deadline = time.monotonic() + SAFETY_S  # PR_SET_PDEATHSIG: the kernel kills them at once
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(_alive, workers))

    # What a run killed while writing leaves: hidden temporary files of the slides in flight.
    out = workdir / "out" / "64px_64um"
    leftovers = [
        out / ".s0.tfrecords.tmp-99999-0badf00d",
        out / ".s0.index.npz.tmp-99999-1234",
        out / "report" / ".s1.json.k2j3h4.tmp",
        out / "report" / ".s1.png.a1b2c3.tmp",
    ]
    for path in leftovers:
        path.write_bytes(b"partial")
    again = subprocess.run(
        [sys.executable, "extract_script.py"], cwd=workdir, capture_output=True, text=True,
        timeout=SAFETY_S,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert int(again.stdout.split("TILES")[1]) > 0
    assert _temporary_files(out) == []
    assert sorted(p.name for p in out.glob("*.tfrecords")) == ["s0.tfrecords", "s1.tfrecords"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_stops_cleanly(workdir):
    parent, workers = _start_hung_extraction(workdir)
    parent.send_signal(signal.SIGTERM)
    _, stderr = parent.communicate(timeout=SAFETY_S)
    assert parent.returncode == -signal.SIGTERM, stderr  # ended by the signal, as asked
    assert "Traceback" not in stderr
    assert not any(map(_alive, workers))  # stopped and reaped before the parent exited
    out = workdir / "out" / "64px_64um"
    assert _temporary_files(out) == []
    assert list(out.glob("*.tfrecords")) == []
