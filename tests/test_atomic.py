"""Atomic writes: the target holds the old content or the new, and no temporary file is left."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from jaxwsi.atomic import atomic_path, write_bytes_atomic, write_text_atomic


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_text_and_bytes_replace_the_target(tmp_path):
    target = tmp_path / "sub" / "a.json"
    write_text_atomic(target, "é1")
    assert target.read_text(encoding="utf-8") == "é1"
    write_bytes_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert leftovers(target.parent) == []


def test_written_files_get_the_usual_permissions(tmp_path):
    target = tmp_path / "a.txt"
    write_text_atomic(target, "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


class Boom(Exception):
    pass


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "a.txt"
    write_text_atomic(target, "old")
    with pytest.raises(TypeError):
        write_bytes_atomic(target, "not bytes")  # type: ignore[arg-type]
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise Boom
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_atomic_path_for_writers_that_need_a_path(tmp_path):
    target = tmp_path / "x.index.npz"
    with atomic_path(target, suffix=".npz") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".npz")
        np.savez(tmp, arr_0=np.arange(4))
    with np.load(target) as data:
        assert data["arr_0"].tolist() == [0, 1, 2, 3]
    assert leftovers(tmp_path) == []


def test_a_missing_folder_is_named_not_the_temporary(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=r"folder .*nope does not exist"):
        write_text_atomic(missing / "a.txt", "x", make_parents=False)
    with (
        pytest.raises(FileNotFoundError, match=r"nope does not exist"),
        atomic_path(missing / "b.npz"),
    ):
        pass
