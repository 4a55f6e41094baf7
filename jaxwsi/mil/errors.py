"""Errors for bad MIL input: bags, bag folders, MIL configs and model folders."""

from __future__ import annotations

from jaxwsi.errors import JaxwsiError


class BagError(JaxwsiError, ValueError):
    """A feature bag or bag folder that cannot be used (the message names the file)."""


class MILConfigError(JaxwsiError, ValueError):
    """A MIL setting or model folder that cannot be used."""
