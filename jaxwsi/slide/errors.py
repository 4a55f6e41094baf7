"""Errors raised while reading slides and annotations; each message names the file at fault."""

from __future__ import annotations


class SlideError(RuntimeError):
    """A slide cannot be opened, read or tiled as asked."""


class MissingMPPError(SlideError):
    """The slide's metadata gives no microns-per-pixel; pass ``mpp`` explicitly."""


class ROIError(ValueError):
    """An ROI file (QuPath CSV or GeoJSON) is malformed; the message names the file and row."""
