"""``wesog-async search``: matching images as JSON Lines."""

from __future__ import annotations

import argparse
from typing import Any, Final

from wesog_async.cli._common import (
    EXIT_OK,
    SEARCH_LANGS,
    SORT_ORDERS,
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

NAME: Final = "search"
_ALL_PAGE_SIZE: Final = 500


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        NAME,
        help="search images; one JSON line per result",
        description="Print matching images as JSON Lines (null fields left out); with "
        "--count or --facets, a last line {count, facets}.",
        epilog=exit_code_epilog(),
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "q", nargs="?", default=None, metavar="Q", help="filter formula (default: every image)"
    )
    parser.add_argument(
        "--sort-by", metavar="FIELD", help="sort by this field (default: the server's order)"
    )
    parser.add_argument(
        "--order",
        choices=SORT_ORDERS,
        dest="sort_order",
        help="sort order (default: the server's)",
    )
    parser.add_argument(
        "--fields",
        action="append",
        metavar="F[,F]",
        help="only these fields (repeatable; default: all)",
    )
    parser.add_argument(
        "--facets",
        action="append",
        metavar="F[,F]",
        help="hit counts per value of these fields, on the last line (repeatable)",
    )
    parser.add_argument("--count", action="store_true", help="print the total hit count")
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help=f"results per page (default: the server's; {_ALL_PAGE_SIZE} with --all)",
    )
    parser.add_argument("--page", type=int, default=1, metavar="N", help="page to print")
    parser.add_argument(
        "--lang", choices=SEARCH_LANGS, help="language of the search (default: the server's)"
    )
    parser.add_argument("--all", action="store_true", help="walk every page (ignores --page)")
    add_quiet(parser)
    add_logging(parser)
    add_connection(parser)


async def _search(args: argparse.Namespace) -> int:
    fields = list_arg(args.fields)
    facets = list_arg(args.facets)
    options: dict[str, Any] = {"sort_by": args.sort_by, "sort_order": args.sort_order}
    async with make_client(args) as client:
        try:
            meta = None
            if args.all:
                async for image in client.images.search_iter(
                    args.q,
                    limit=args.limit or _ALL_PAGE_SIZE,
                    fields=fields,
                    lang=args.lang,
                    **options,
                ):
                    out(to_json(image))
                if args.count or facets:
                    meta = await client.images.search(
                        args.q, limit=1, count=args.count or None, facets=facets, lang=args.lang
                    )
            else:
                meta = await client.images.search(
                    args.q,
                    page=args.page,
                    limit=args.limit,
                    fields=fields,
                    facets=facets,
                    count=args.count or None,
                    lang=args.lang,
                    **options,
                )
                for image in meta.results:
                    out(to_json(image))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if meta is not None and (args.count or facets):
        out({"count": meta.count, "facets": dict(meta.facets)})
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    with library_logs(args):
        return run_loop(_search(args))


run = guarded(_run)

__all__ = ["NAME", "add", "run"]
