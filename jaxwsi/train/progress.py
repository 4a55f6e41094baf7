"""A tqdm progress bar for training loops: loss and metrics, items per second."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

import jax
from tqdm.auto import tqdm


class Progress:
    """``with Progress(total, "epoch 1", unit="tile") as bar: bar.update(n, loss=...)``.

    Shows the given metrics (as short floats) and the rate in ``unit``/s; hidden on processes
    other than 0 and when ``disable`` is set. Metric values may be device arrays: they are only
    converted (a device sync) when the bar refreshes, at most every ``refresh`` seconds.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        *,
        unit: str = "tile",
        disable: bool = False,
        refresh: float = 0.5,
    ) -> None:
        self._bar = tqdm(
            total=total,
            desc=desc,
            unit=unit,
            unit_scale=True,
            dynamic_ncols=True,
            disable=disable or jax.process_index() != 0,
        )
        self._refresh = refresh
        self._last = 0.0

    def update(self, n: int, **metrics: Any) -> None:
        self._bar.update(n)
        now = time.monotonic()
        if metrics and now - self._last >= self._refresh:
            self._last = now
            self._bar.set_postfix({k: f"{float(v):.4g}" for k, v in metrics.items()}, refresh=False)

    def write(self, message: str) -> None:
        """Print a line above the bar."""
        self._bar.write(message)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
