"""The ``wesog-async`` command line (also ``python -m wesog_async``).

One module per command, each with ``NAME``, ``add(subparsers)`` declaring its
arguments and ``run(args) -> int`` returning the exit status; shared plumbing
(exit codes, connection options, the event-loop runner, output) lives in
``_common``. The CLI uses only the public API of :mod:`wesog_async` and
:mod:`wesog_async.emulator`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from types import ModuleType
from typing import Final

from wesog_async import __version__
from wesog_async.cli import delete, demo, emulator, get, job, ops, search, upload, worker
from wesog_async.cli._common import EXIT_USAGE, HelpFormatter, exit_code_epilog

# In the order ``--help`` lists them.
COMMANDS: Final[tuple[ModuleType, ...]] = (
    emulator, upload, demo, delete, get, search, ops, job, worker,
)  # fmt: skip
_RUN: Final[dict[str, Callable[[argparse.Namespace], int]]] = {
    command.NAME: command.run for command in COMMANDS
}


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (also rendered as the docs' CLI reference)."""
    parser = argparse.ArgumentParser(
        prog="wesog-async",
        description="Client tools for the Wesog image-search API.",
        epilog=exit_code_epilog(),
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {__version__}",
        help="print the version and exit",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command, return its status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    return _RUN[args.command](args)


__all__ = ["COMMANDS", "build_parser", "main"]
