"""Argument types and help formatting shared by every `jaxwsi` command group.

Types turn a bad value into argparse's one-line usage error (exit 2) instead of a traceback from
deep inside the library: ``--tile-um`` is parsed the same way by every command that takes it.
"""

from __future__ import annotations

import argparse
from typing import Any


def tile_um(text: str) -> int | float | str:
    """``--tile-um``: microns (``302``, ``302.5``) or a magnification (``10x``, ``2.5x``)."""
    from jaxwsi.slide.grid import parse_tile_um

    try:
        return parse_tile_um(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def positive_int(text: str) -> int:
    """A whole number >= 1 (``--tile-px``, ``--k-fold``, ...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def fraction(text: str) -> float:
    """A number strictly between 0 and 1 (``--val-fraction``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value:g}")
    return value


def existing_dir(text: str) -> str:
    """A folder that exists (``--roi-dir``, ``--slides``): a typo fails here, not silently."""
    from pathlib import Path

    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"folder not found: {text}")
    return text


class HelpFormatter(argparse.HelpFormatter):
    """Help that ends with ``(default: X)`` for every option that has a default worth showing
    (not None, an empty list or a False flag) and does not state it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        default = action.default
        shown = (
            default is not None
            and default != []
            and default is not argparse.SUPPRESS
            and default is not False
            and action.option_strings
            and "%(default)" not in help_text
            and "default" not in help_text
        )
        return f"{help_text} (default: %(default)s)" if shown else help_text


class Parser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` with `HelpFormatter`; sub-commands inherit it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
