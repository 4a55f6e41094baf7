"""WorkerPool: results, task errors, tasks that cannot be sent, workers that cannot start."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from jaxwsi.slide.workers import WorkerPool, WorkerStartError


def _collect(pool):
    done = []
    while pool.busy():
        done.extend(pool.wait())
    return {d.key: d for d in done}


def test_results_and_errors_come_back_by_key():
    with WorkerPool(1) as pool:
        (worker,) = pool.pids
        pool.submit("pid", os.getpid)
        pool.submit("error", int, "not a number")
        pool.submit("unsendable", lambda: 1)
        pool.submit("after", divmod, 7, 2)
        done = _collect(pool)
    assert done["pid"].value == worker != os.getpid()  # ran in the worker
    assert done["error"].kind == "error"
    assert done["error"].error.startswith("ValueError: invalid literal for int()")
    assert done["unsendable"].kind == "error" and "pickle" in done["unsendable"].error
    assert done["after"].value == (3, 1)  # the worker goes on after a failed task


def test_workers_that_cannot_start_are_an_error(monkeypatch):
    monkeypatch.setattr(sys, "executable", shutil.which("false"))
    with pytest.raises(WorkerStartError, match="exit before they start \\(exit code 1"):
        pool = WorkerPool(1)
        try:
            while True:
                pool.wait()
        finally:
            pool.close()
