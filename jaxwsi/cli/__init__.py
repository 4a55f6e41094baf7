"""The `jaxwsi` command: one module per command group (`extract`, `tfrecord`, `project`, ...),
each with an ``add(commands)`` that declares its parser and binds a handler; handlers call the
library API and return the process exit code. Only the group of the command being run is imported
(all of them for ``jaxwsi --help``), and nothing heavy until its handler runs, so a quick command
never pays for a heavy group.

An error the user can fix (`jaxwsi.errors.JaxwsiError`, ``TFRecordError``, a ``ValueError`` for a
bad argument, a missing file) prints one line, ``jaxwsi: error: ...``, and exits with 2, as
argparse does for bad options; ``--traceback`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from jaxwsi.cli.arguments import Parser

# The command groups (modules of jaxwsi.cli), in the order `jaxwsi --help` lists them.
_COMMAND_GROUPS = ("extract", "tfrecord", "project", "segment", "train", "mil")

USAGE_ERROR = 2  # the exit code of argparse's own usage errors


def _build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command group, or only of ``command``'s."""
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
    for name in _COMMAND_GROUPS:
        if command is None or name == command:
            importlib.import_module(f"jaxwsi.cli.{name}").add(commands)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The command group ``argv`` runs (its first word that is not an option), if it is one."""
    words = [word for word in argv if not word.startswith("-")]
    return words[0] if words and words[0] in _COMMAND_GROUPS else None


def _user_errors() -> tuple[type[BaseException], ...]:
    from jaxwsi._native import TFRecordError
    from jaxwsi.errors import JaxwsiError

    # ValueError: bad arguments the library rejects (e.g. --shard 3/2); OSError: missing,
    # unreadable or existing files and folders, named in the message.
    return (JaxwsiError, TFRecordError, ValueError, OSError)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and run the chosen command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _build_parser(_command(argv)).parse_args(argv)
    try:
        return int(args.handler(args))
    except _user_errors() as error:
        if args.traceback:
            raise
        message = " ".join(str(error).split("\n")) or type(error).__name__
        print(f"jaxwsi: error: {message}", file=sys.stderr)
        return USAGE_ERROR
