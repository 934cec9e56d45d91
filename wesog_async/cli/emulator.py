"""``wesog-async emulator``: serve a local emulator of the Wesog API until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
from typing import Final

from wesog_async.cli._common import (
    EXIT_OK,
    EXIT_USAGE,
    HelpFormatter,
    err,
    exit_code_epilog,
    run_loop,
)
from wesog_async.emulator import EmulatorConfig, EmulatorServer, run_emulator
from wesog_async.emulator.faults import SPEC_HELP

NAME: Final = "emulator"


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        NAME,
        help="run a local Wesog API emulator",
        description="Serve a local emulator of the Wesog API until Ctrl-C.",
        epilog=f"{SPEC_HELP}\n\n{exit_code_epilog()}",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port, 0 = any free")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="accepted API key, one tenant each; repeatable (default: demo)",
    )
    parser.add_argument(
        "--item-delay-ms", type=float, default=0.0, metavar="MS", help="time per item"
    )
    parser.add_argument(
        "--op-delay-ms", type=float, default=0.0, metavar="MS", help="time per operation"
    )
    parser.add_argument(
        "--delay-distribution",
        choices=("fixed", "exponential", "lognormal"),
        default="fixed",
        help="fixed delays, or random ones with the given mean/median",
    )
    parser.add_argument(
        "--workers", type=int, default=1, metavar="N", help="operations run at once per tenant"
    )
    parser.add_argument(
        "--max-batch-items", type=int, default=10000, metavar="N", help="items per write request"
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=50_000_000,
        metavar="BYTES",
        help="largest request body accepted",
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed of random delays and faults"
    )
    parser.add_argument(
        "--faults", default="", metavar="SPEC", help="faults to inject (see below; default: none)"
    )
    parser.add_argument("--access-log", action="store_true", help="log each request to stderr")


def run(args: argparse.Namespace) -> int:
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
        err(f"wesog-async {NAME}: error: {exc}")
        return EXIT_USAGE
    if config.access_log:
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
    except OSError as exc:  # the address is taken or not ours: a configuration problem
        err(f"wesog-async {NAME}: error: cannot listen on {args.host}:{args.port}: {exc}")
        return EXIT_USAGE
    return EXIT_OK


__all__ = ["NAME", "add", "run"]
