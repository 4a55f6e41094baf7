"""The `jaxwsi` command: every sub-command is declared here, and each calls the library API.

Each command group has one ``_add_<group>`` function that declares its parser and binds a handler;
handlers return the process exit code.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxwsi", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for add in _COMMAND_GROUPS:
        add(commands)
    return parser


# One entry per command group; each adds its sub-parser and sets `handler`.
_COMMAND_GROUPS: list[Callable[[argparse._SubParsersAction], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and run the chosen command; returns the exit code."""
    args = _build_parser().parse_args(argv)
    return int(args.handler(args))
