"""TensorBoard event files (tensorboardX: no TensorFlow needed), written by process 0 only."""

from __future__ import annotations

import struct
from pathlib import Path
from types import TracebackType
from typing import Any

import jax
import numpy as np


class EventLog:
    """Scalars and images under ``logdir`` as TensorBoard event files.

    Only process 0 writes (every process calls the same methods, so a multi-host loop needs no
    special cases); `close` flushes. Usable as a context manager.
    """

    def __init__(self, logdir: str | Path) -> None:
        self.logdir = Path(logdir)
        self._writer: Any = None
        if jax.process_index() == 0:
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(str(self.logdir))

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self._writer is not None:
            self._writer.add_scalar(tag, float(value), int(step))

    def scalars(self, values: dict[str, float], step: int, prefix: str = "") -> None:
        for tag, value in values.items():
            self.scalar(f"{prefix}{tag}", value, step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        """An HWC uint8 (or float in [0, 1]) image."""
        if self._writer is not None:
            self._writer.add_image(tag, np.asarray(image), int(step), dataformats="HWC")

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_scalars(logdir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files under ``logdir``: tag → [(step, value), ...] in file
    order. Event files are TFRecord-framed ``Event`` protos (length, CRC, data, CRC)."""
    from tensorboardX.proto.event_pb2 import Event

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(Path(logdir).rglob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset + 12 <= len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            record = data[offset + 12 : offset + 12 + length]
            offset += 12 + length + 4
            event = Event.FromString(record)
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars
