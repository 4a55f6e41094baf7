"""Errors raised while reading slides and annotations; each message names the file at fault."""

from __future__ import annotations

from jaxwsi.errors import JaxwsiError


class SlideError(JaxwsiError, RuntimeError):
    """A slide cannot be opened, read or tiled as asked."""


class MissingMPPError(SlideError):
    """The slide's metadata gives no microns-per-pixel; pass ``mpp`` explicitly."""


class ROIError(JaxwsiError, ValueError):
    """An ROI file (QuPath CSV or GeoJSON) is malformed; the message names the file and row."""
