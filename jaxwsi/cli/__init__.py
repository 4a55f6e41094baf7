"""The `jaxwsi` command: one module per command group (`extract`, `tfrecord`, `project`, ...),
each with an ``add(commands)`` that declares its parser and binds a handler; handlers call the
library API and return the process exit code. Nothing heavy is imported until a command runs.

An error the user can fix (`jaxwsi.errors.JaxwsiError`, ``TFRecordError``, a ``ValueError`` for a
bad argument, a missing file) prints one line, ``jaxwsi: error: ...``, and exits with 2, as
argparse does for bad options; ``--traceback`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jaxwsi.cli import extract, project, segment, tfrecord
from jaxwsi.cli.arguments import Parser

# The command groups, in the order `jaxwsi --help` lists them.
_COMMAND_GROUPS = (extract, tfrecord, project, segment)

USAGE_ERROR = 2  # the exit code of argparse's own usage errors


def _build_parser() -> argparse.ArgumentParser:
    from jaxwsi import __version__

    parser = Parser(
        prog="jaxwsi",
        description="Whole-slide images to tiles, TFRecords and datasets for JAX (see README.md).",
    )
    parser.add_argument("--version", action="version", version=f"jaxwsi {__version__}")
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="on an error, show the full traceback instead of one line (for bug reports)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for group in _COMMAND_GROUPS:
        group.add(commands)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from jaxwsi._native import TFRecordError
    from jaxwsi.errors import JaxwsiError

    # ValueError: bad arguments the library rejects (e.g. --shard 3/2); OSError: missing,
    # unreadable or existing files and folders, named in the message.
    return (JaxwsiError, TFRecordError, ValueError, OSError)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and run the chosen command; returns the exit code."""
    args = _build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except _user_errors() as error:
        if args.traceback:
            raise
        message = " ".join(str(error).split("\n")) or type(error).__name__
        print(f"jaxwsi: error: {message}", file=sys.stderr)
        return USAGE_ERROR
