"""`WorkerPool`: worker processes for `extract_tiles` that work from any kind of main program.

Why not ``multiprocessing`` / ``ProcessPoolExecutor``: spawned workers re-import the parent's
``__main__``, so a script calling `extract_tiles` at its top level (no main guard, or under
``python -m``) re-runs itself in every worker, which dies; fork is unsafe once JAX has started
threads; and a SIGKILL of the parent leaves the workers and multiprocessing's resource tracker
alive. Threads would avoid all three, but a hung or crashing OpenSlide call (or QC callable)
could then neither be killed nor survived. So each worker is a fresh interpreter running
`jaxwsi.slide._worker` (which dies with its parent), fed one task at a time over a socket.

    pool = WorkerPool(2, stall_timeout=600)
    pool.submit(key, fn, *args)           # fn and args pickle; fn is found by module + name
    for done in pool.wait():              # Done(key, value) or Done(key, error=..., kind=...)
        ...
    pool.close()

A task whose worker dies (``kind="died"``) or runs longer than ``stall_timeout`` seconds by
``clock`` (``kind="stalled"``; its worker is killed) is reported and a new worker takes its
place; the other workers go on. The stall clock starts when a task reaches a started worker, so
start-up never counts.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import selectors
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jaxwsi
from jaxwsi.slide._worker import recv_message, send_message

DEFAULT_STALL_TIMEOUT = 600.0  # seconds a task may run before its worker counts as hung
_MAX_START_FAILURES = 3  # workers dying before they are ready: a broken environment


def _worker_environment() -> dict[str, str]:
    """This environment, with the folder jaxwsi is imported from first on PYTHONPATH, so the
    worker finds the same jaxwsi even when the parent put it on sys.path itself."""
    root = str(Path(jaxwsi.__file__).resolve().parent.parent)
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


class WorkerStartError(RuntimeError):
    """Worker processes die before they are ready (their stderr says why)."""


@dataclass
class Done:
    """A finished task: its ``value``, or an ``error`` text of ``kind`` error/died/stalled."""

    key: Hashable
    value: Any = None
    error: str | None = None
    kind: str = "ok"


@dataclass
class _Worker:
    process: subprocess.Popen
    sock: socket.socket
    ready: bool = False
    task: tuple[Hashable, float] | None = None  # (key, clock time it was sent)


class WorkerPool:
    """``size`` worker processes running submitted tasks in submission order."""

    def __init__(
        self,
        size: int,
        *,
        stall_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if size < 1:
            raise ValueError(f"a worker pool needs at least 1 worker, got {size}")
        self.size = size
        self.stall_timeout = stall_timeout
        self._clock = clock
        self._selector = selectors.DefaultSelector()
        self._workers: list[_Worker] = []
        self._pending: deque[tuple[Hashable, bytes]] = deque()
        self._done: list[Done] = []
        self._start_failures = 0
        for _ in range(size):
            self._start()

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers]

    def busy(self) -> bool:
        """Whether any task is waiting or running (or finished but not yet collected)."""
        return bool(self._pending or self._done or any(w.task for w in self._workers))

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)``; its result comes back from `wait` as ``Done(key, ...)``."""
        try:
            payload = pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # e.g. a lambda QC callable
            self._done.append(Done(key, error=f"{type(error).__name__}: {error}", kind="error"))
            return
        self._pending.append((key, payload))
        self._dispatch()

    def wait(self, timeout: float = 0.5) -> list[Done]:
        """Tasks finished since the last call; waits up to ``timeout`` s for the first."""
        if not self._done:
            for selected, _ in self._selector.select(timeout):
                self._receive(selected.data)
            self._check_stalls()
            self._dispatch()
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        """Stop every worker (killing any still running a task) and wait for them to exit."""
        for worker in list(self._workers):
            self._remove(worker, kill=worker.task is not None or not worker.ready)
        self._selector.close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        parent_end, child_end = socket.socketpair()
        fd = child_end.fileno()
        process = subprocess.Popen(
            [sys.executable, "-m", "jaxwsi.slide._worker", str(fd), str(os.getpid())],
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
            env=_worker_environment(),
        )
        child_end.close()
        with contextlib.suppress(OSError):  # if it died already, _receive sees the EOF
            send_message(parent_end, {"sys_path": list(sys.path)})
        worker = _Worker(process, parent_end)
        self._workers.append(worker)
        self._selector.register(parent_end, selectors.EVENT_READ, worker)

    def _dispatch(self) -> None:
        for worker in self._workers:
            if not self._pending:
                return
            if worker.ready and worker.task is None:
                key, payload = self._pending.popleft()
                worker.task = (key, self._clock())
                # If it died just now, _receive sees the EOF and reports the task.
                with contextlib.suppress(OSError):
                    send_message(worker.sock, (key, payload))

    def _receive(self, worker: _Worker) -> None:
        try:
            message = recv_message(worker.sock)
        except (EOFError, OSError):
            self._lost(worker)
            return
        if message[0] == "ready" and not worker.ready:
            worker.ready = True
            self._start_failures = 0
            return
        key, ok, value = message
        worker.task = None
        self._done.append(Done(key, value) if ok else Done(key, error=value, kind="error"))

    def _lost(self, worker: _Worker) -> None:
        """A worker died: report its task, replace it."""
        self._remove(worker, kill=True)
        code = worker.process.returncode
        if not worker.ready:
            self._start_failures += 1
            if self._start_failures >= _MAX_START_FAILURES:
                raise WorkerStartError(
                    f"extraction worker processes exit before they start (exit code {code}; "
                    "their error is printed above)"
                )
        if worker.task is not None:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            self._done.append(Done(worker.task[0], error=f"its worker {how}", kind="died"))
        self._start()

    def _check_stalls(self) -> None:
        if self.stall_timeout is None:
            return
        now = self._clock()
        for worker in list(self._workers):
            if worker.task is not None and now - worker.task[1] > self.stall_timeout:
                key = worker.task[0]
                self._remove(worker, kill=True)
                error = f"it ran over {self.stall_timeout:g} s; its worker was killed"
                self._done.append(Done(key, error=error, kind="stalled"))
                self._start()

    def _remove(self, worker: _Worker, *, kill: bool) -> None:
        self._workers.remove(worker)
        self._selector.unregister(worker.sock)
        worker.sock.close()  # an idle worker exits on the EOF
        if kill:
            worker.process.kill()
        try:
            worker.process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # an idle worker that does not exit: stop it
            worker.process.kill()
            worker.process.wait()
