"""Stop as soon as possible on request: Ctrl-C or SIGTERM (what SLURM sends at a time-out).

The loop checks `StopRequest.requested` after each step, saves a resumable checkpoint and
returns; a second Ctrl-C raises `KeyboardInterrupt` at once, for a loop that is stuck.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Context manager installing SIGINT/SIGTERM handlers that set `requested`.

    Outside the main thread (where Python cannot install handlers) it installs nothing and
    `requested` only changes through `request()`. Previous handlers come back on exit.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def request(self, name: str = "request") -> None:
        """Ask the loop to stop after its current step."""
        self.requested = True
        self.signal_name = name

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.request(signal.Signals(signum).name)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
