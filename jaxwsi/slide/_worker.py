"""A worker process of `jaxwsi.slide.workers.WorkerPool`: ``python -m jaxwsi.slide._worker FD PID``.

The worker is a fresh interpreter that imports jaxwsi and the modules of the tasks it is sent,
never the parent's ``__main__``: a script that calls `extract_tiles` at its top level (no
``if __name__ == "__main__":``), ``python -m``, ``python -c`` or a notebook all work, where
``multiprocessing``'s spawn re-runs the script in every worker.

It dies with its parent: on Linux the kernel sends it SIGKILL when the parent dies
(``prctl(PR_SET_PDEATHSIG)``), elsewhere a thread notices that the parent is gone; a SIGKILL of
the parent (a SLURM time-out) therefore leaves no worker behind. Messages are length-prefixed
pickles over a socket pair (`send_message`, `recv_message`): the parent sends ``init`` (its
``sys.path``), then ``(key, pickled (fn, args))`` tasks; the worker answers ``ready``, then
``(key, ok, result or error text)`` per task.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import socket
import struct
import sys
import threading
import time
from typing import Any

_HEADER = struct.Struct("!Q")
_PR_SET_PDEATHSIG = 1


def send_message(sock: socket.socket, message: Any) -> None:
    """Send one pickled message."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_HEADER.pack(len(data)) + data)


def recv_message(sock: socket.socket) -> Any:
    """Receive one message; EOFError when the other side has closed or died."""
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    return pickle.loads(_recv_exact(sock, size))


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view, received = memoryview(buffer), 0
    while received < size:
        count = sock.recv_into(view[received:])
        if count == 0:
            raise EOFError("the other end of the worker connection closed")
        received += count
    return bytes(buffer)


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still works
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    """Portable fallback: exit once this process has been re-parented (its parent died)."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def _serve(sock: socket.socket) -> None:
    init = recv_message(sock)
    sys.path[:] = init["sys_path"]  # the parent's modules (a QC callable's) import here too
    send_message(sock, ("ready", os.getpid()))
    while True:
        try:
            key, payload = recv_message(sock)
        except EOFError:
            return  # the pool closed
        try:
            fn, args = pickle.loads(payload)
            reply = (key, True, fn(*args))
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # reported to the parent, which goes on with other tasks
            data = pickle.dumps((key, False, f"{type(error).__name__}: {error}"))
        sock.sendall(_HEADER.pack(len(data)) + data)


def main() -> None:
    fd, parent = int(sys.argv[1]), int(sys.argv[2])
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which stops us
    gone = (EOFError, BrokenPipeError, ConnectionResetError)  # the pool closed or the parent died
    with socket.socket(fileno=fd) as sock, contextlib.suppress(*gone):
        _serve(sock)


if __name__ == "__main__":
    main()
