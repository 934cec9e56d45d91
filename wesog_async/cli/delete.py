"""``wesog-async delete``: delete images by id in one operation."""

from __future__ import annotations

import argparse
from typing import Final

from wesog_async.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    HelpFormatter,
    add_connection,
    add_logging,
    add_quiet,
    err,
    exit_code_epilog,
    guarded,
    make_client,
    out,
    run_loop,
    to_json,
    warn,
)
from wesog_async.cli._logging import library_logs

NAME: Final = "delete"


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        NAME,
        help="delete images by id (one operation)",
        description="Delete the images and print the finished operation (JSON). "
        "For many ids, use `upload --mode delete FILE`.",
        epilog=exit_code_epilog(),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("ids", nargs="+", metavar="ID", help="image ids to delete")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="missing ids are errors (without it, the server ignores them and counts them good)",
    )
    parser.add_argument(
        "--urgent", action="store_true", help="put the operation first in the queue"
    )
    add_quiet(parser)
    add_logging(parser)
    add_connection(parser)


async def _delete(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        fut = await client.images.delete_many(args.ids, strict=args.strict, urgent=args.urgent)
        op = await fut
    out(to_json(op))
    for error in fut.failed:
        err(f"{error.image_id}: {error.msg}")
    return EXIT_OK if op.num_bad == 0 else EXIT_FAILED


def _run(args: argparse.Namespace) -> int:
    if not args.strict:
        warn(
            args,
            "without --strict, ids missing on the server are ignored and counted as "
            "deleted (add --strict to report them as failed)",
        )
    with library_logs(args):
        return run_loop(_delete(args))


run = guarded(_run)

__all__ = ["NAME", "add", "run"]
