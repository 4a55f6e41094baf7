"""The `jaxwsi` command: one module per command group (`extract`, `tfrecord`, `project`, ...),
each with an ``add(commands)`` that declares its parser and binds a handler; handlers call the
library API and return the process exit code. Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from jaxwsi.cli import extract, project, segment, tfrecord

# The command groups, in the order `jaxwsi --help` lists them.
_COMMAND_GROUPS = (extract, tfrecord, project, segment)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxwsi",
        description="Whole-slide images to tiles, TFRecords and datasets for JAX (see README.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for group in _COMMAND_GROUPS:
        group.add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and run the chosen command; returns the exit code."""
    args = _build_parser().parse_args(argv)
    return int(args.handler(args))
