"""Atomic file writes: a reader sees the old content or the new, never a partial file.

One recipe for every writer in jaxwsi: write a hidden temporary file in the target's folder (so
the rename stays on one file system), fsync it, rename it over the target, fsync the folder (so
the rename itself survives a crash); on any failure the temporary file is removed and the target
is left as it was. Temporary names are ``.{name}.{random}.tmp``.

    write_text_atomic(path, text)
    write_bytes_atomic(path, data)
    with atomic_path(path) as tmp:      # for writers that need a path: np.savez, PIL, tifffile
        np.savez(tmp, arr_0=...)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_bytes_atomic", "write_text_atomic"]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by the owner only; written files get the usual permissions.
_FILE_MODE = 0o666 & ~_current_umask()


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (skipped where a folder cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename is still atomic
    finally:
        os.close(fd)


def _temporary(path: Path, suffix: str) -> tuple[int, Path]:
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except FileNotFoundError:
        message = f"cannot write {path}: folder {path.parent} does not exist"
        raise FileNotFoundError(message) from None
    return fd, Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; on a clean exit it is fsynced and renamed
    over ``path``, on an exception it is removed. ``suffix`` lets writers that append or check an
    extension (``np.savez`` adds ``.npz``) see the one they expect. The folder must exist."""
    path = Path(path)
    fd, tmp = _temporary(path, suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _FILE_MODE)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, make_parents: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (creating missing folders unless told not to)."""
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary(path, ".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), _FILE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_text_atomic(
    path: str | os.PathLike, text: str, *, encoding: str = "utf-8", make_parents: bool = True
) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8 unless told otherwise)."""
    write_bytes_atomic(path, text.encode(encoding), make_parents=make_parents)
