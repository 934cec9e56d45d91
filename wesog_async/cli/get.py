"""``wesog-async get``: print one image as JSON."""

from __future__ import annotations

import argparse
from typing import Final

from wesog_async.cli._common import (
    EXIT_OK,
    HelpFormatter,
    UsageError,
    add_connection,
    add_logging,
    add_quiet,
    exit_code_epilog,
    guarded,
    list_arg,
    make_client,
    out,
    run_loop,
    to_json,
)
from wesog_async.cli._logging import library_logs

NAME: Final = "get"


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        NAME,
        help="print one image (JSON)",
        description="Print one image as a JSON line (null fields left out).",
        epilog=exit_code_epilog(),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("id", metavar="ID", help="the image id")
    parser.add_argument(
        "--fields",
        action="append",
        metavar="F[,F]",
        help="only these fields (repeatable; default: all)",
    )
    add_quiet(parser)
    add_logging(parser)
    add_connection(parser)


async def _get(args: argparse.Namespace) -> int:
    fields = list_arg(args.fields)
    async with make_client(args) as client:
        try:
            image = await client.images.get(args.id, fields=fields)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    out(to_json(image))
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    with library_logs(args):
        return run_loop(_get(args))


run = guarded(_run)

__all__ = ["NAME", "add", "run"]
