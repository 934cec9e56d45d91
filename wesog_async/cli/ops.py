"""``wesog-async ops``: get, list, cancel and wait for operations."""

from __future__ import annotations

import argparse
from typing import Final

from wesog_async import OperationTimeoutError
from wesog_async.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    HelpFormatter,
    UsageError,
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
)
from wesog_async.cli._logging import library_logs

NAME: Final = "ops"


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        NAME,
        help="operations: get, list, cancel, wait",
        description="Inspect this API key's operations; each prints JSON lines.",
        epilog=exit_code_epilog(),
        formatter_class=HelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (
        ("get", "print one operation's status"),
        ("cancel", "cancel an operation that has not started"),
        ("wait", "wait until an operation finishes, then print it (exit 1 if items failed)"),
    ):
        action = actions.add_parser(
            name,
            help=text,
            description=text,
            epilog=exit_code_epilog(),
            formatter_class=HelpFormatter,
        )
        action.add_argument("op_id", type=int, metavar="OP_ID", help="the operation id")
        if name == "wait":
            action.add_argument(
                "--timeout",
                type=float,
                metavar="S",
                help="give up after S seconds, exit 1 (default: the client's wait timeout)",
            )
        add_quiet(action)
        add_logging(action)
        add_connection(action)
    listing = actions.add_parser(
        "list",
        help="this API key's operations, newest first",
        description="Print this API key's operations, newest first, one JSON line each.",
        epilog=exit_code_epilog(),
        formatter_class=HelpFormatter,
    )
    listing.add_argument(
        "--limit", type=int, metavar="N", help="operations per page (default: the server's)"
    )
    listing.add_argument("--page", type=int, metavar="N", help="page to print (default: 1)")
    add_quiet(listing)
    add_logging(listing)
    add_connection(listing)


async def _ops(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        try:
            if args.action == "list":
                for op in await client.ops.list(limit=args.limit, page=args.page):
                    out(to_json(op))
                return EXIT_OK
            if args.action == "get":
                op = await client.ops.get(args.op_id)
            elif args.action == "cancel":
                op = await client.ops.cancel(args.op_id)
            else:
                try:
                    op = await client.ops.wait(args.op_id, timeout=args.timeout)
                except OperationTimeoutError as exc:
                    err(f"wesog-async {NAME} wait: {exc}")
                    return EXIT_FAILED
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    out(to_json(op))
    return EXIT_OK if args.action != "wait" or op.num_bad == 0 else EXIT_FAILED


def _run(args: argparse.Namespace) -> int:
    with library_logs(args):
        return run_loop(_ops(args))


run = guarded(_run)

__all__ = ["NAME", "add", "run"]
