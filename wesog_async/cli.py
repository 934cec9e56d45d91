"""The ``wesog-async`` command line (also ``python -m wesog_async``).

Each subcommand is one ``_add_<name>`` function that declares its arguments
and one ``_cmd_<name>`` function that runs it and returns the exit status;
register new ones in ``_SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from wesog_async._cli_commands import SUBCOMMANDS as _CLIENT_SUBCOMMANDS
from wesog_async._cli_commands import run_loop
from wesog_async.emulator import EmulatorConfig, EmulatorServer, run_emulator
from wesog_async.emulator.faults import SPEC_HELP

Command = Callable[[argparse.Namespace], int]


# -- emulator --------------------------------------------------------------------------
def _add_emulator(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "emulator",
        help="run a local Wesog API emulator",
        description="Serve a local emulator of the Wesog API until Ctrl-C.",
        epilog=SPEC_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port, 0 = any free (default 8080)")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="accepted API key, one tenant each; repeatable (default: demo)",
    )
    parser.add_argument("--item-delay-ms", type=float, default=0.0, help="time per item")
    parser.add_argument("--op-delay-ms", type=float, default=0.0, help="time per operation")
    parser.add_argument(
        "--delay-distribution",
        choices=("fixed", "exponential", "lognormal"),
        default="fixed",
        help="fixed delays, or random ones with the given mean/median (default fixed)",
    )
    parser.add_argument("--workers", type=int, default=1, help="operations run at once per tenant")
    parser.add_argument("--max-batch-items", type=int, default=10000)
    parser.add_argument("--max-body-bytes", type=int, default=50_000_000)
    parser.add_argument("--seed", type=int, default=0, help="seed of delays and faults")
    parser.add_argument("--faults", default="", metavar="SPEC", help="faults to inject (below)")
    parser.add_argument("--access-log", action="store_true", help="log each request")


def _cmd_emulator(args: argparse.Namespace) -> int:
    try:
        config = EmulatorConfig(
            api_keys=tuple(args.api_keys or ("demo",)),
            item_delay_ms=args.item_delay_ms,
            op_delay_ms=args.op_delay_ms,
            delay_distribution=args.delay_distribution,
            workers_per_tenant=args.workers,
            max_batch_items=args.max_batch_items,
            max_body_bytes=args.max_body_bytes,
            seed=args.seed,
            access_log=args.access_log,
            faults=args.faults,
        )
    except ValueError as exc:
        print(f"wesog-async emulator: error: {exc}", file=sys.stderr)
        return 2
    if config.access_log:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(message)s")

    def ready(server: EmulatorServer) -> None:
        # The keys are the ones the user just typed, for a local emulator.
        print(f"Wesog emulator listening on {server.url} ({len(config.api_keys)} API key(s))")
        print(f"Try: curl -H 'API-Key: {server.api_key}' '{server.url}/imgs?count=true'")
        print("Press Ctrl-C to stop.", flush=True)

    try:
        run_loop(run_emulator(config, args.host, args.port, on_ready=ready))
    except KeyboardInterrupt:
        print("Stopped.")
    except OSError as exc:
        print(f"wesog-async emulator: error: {exc}", file=sys.stderr)
        return 1
    return 0


# -- entry point ------------------------------------------------------------------------
_SUBCOMMANDS: dict[str, tuple[Callable[[Any], None], Command]] = {
    "emulator": (_add_emulator, _cmd_emulator),
    # upload, demo, delete, get, search, ops
    **_CLIENT_SUBCOMMANDS,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wesog-async", description="Client tools for the Wesog image-search API."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add, _ in _SUBCOMMANDS.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the subcommand, return its status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _, command = _SUBCOMMANDS[args.command]
    return command(args)
