"""``wesog-async worker``: drain a scale-out job's shards (no task engine needed).

Run as many copies as you like, on any machines that reach the job database
and the API (and see the input files at the paths ``job create`` recorded):
k8s, systemd or slurm can each run N of them. A fatal error on a shard (a
rejected key, the API unreachable, an unreadable input) gives the shard back
and exits with the status of the shared exit-code table, printed with
``--quiet`` too.
"""

from __future__ import annotations

import argparse
from typing import Final

from wesog_async import WesogError
from wesog_async.cli._common import (
    EXIT_CONNECTION,
    EXIT_OK,
    EXIT_USAGE,
    HelpFormatter,
    UsageError,
    add_connection,
    add_logging,
    add_quiet,
    err,
    exit_code_epilog,
    exit_code_for,
    guarded,
    info,
    make_client,
    out,
    run_loop,
)
from wesog_async.cli._logging import library_logs
from wesog_async.cli.job import add_journal, journal_of, unreachable
from wesog_async.scale import ShardError, run_worker

NAME: Final = "worker"


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        NAME,
        help="drain a scale-out job's shards (run N of them)",
        description="Claim JOB's shards one at a time with a lease and ingest each, until "
        "every shard is done; a shard whose worker died is taken over when its lease "
        "runs out. A worker whose own lease was taken over meanwhile (it stalled) has its "
        "next batch refused by the journal, stops that shard without sending more and "
        "counts it as lost. Prints one JSON summary on stdout at the end.",
        epilog=exit_code_epilog(),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("job", metavar="JOB", help="the job's name (see `wesog-async job create`)")
    add_journal(parser)
    parser.add_argument(
        "--lease", type=float, default=30.0, metavar="S",
        help="lease of a shard, renewed every S/3 seconds; a dead worker's shard is taken "
        "over after S seconds",
    )  # fmt: skip
    parser.add_argument(
        "--worker-id", metavar="ID", help="name in `job status` (default: host:pid)"
    )
    parser.add_argument(
        "--no-wait", action="store_true",
        help="exit when no shard is free, instead of staying to take over expiring leases",
    )  # fmt: skip
    add_quiet(parser)
    add_logging(parser)
    add_connection(parser)


def shard_exit_code(error: BaseException) -> int:
    """The exit status for the error that stopped a shard: the table's, with
    the shard's input unreadable here a usage error (2) and the job database
    gone a connection failure (3)."""
    if isinstance(error, ConnectionError | TimeoutError):
        return EXIT_CONNECTION
    if isinstance(error, OSError) and not isinstance(error, WesogError):
        return EXIT_USAGE  # no such file on this machine, permission denied, ...
    return exit_code_for(error)


async def _worker(args: argparse.Namespace) -> int:

    if args.lease <= 0:
        raise UsageError("--lease must be a positive number of seconds")
    dsn = journal_of(args)

    def on_shard(shard_id: int, counts: dict[str, int]) -> None:
        info(args, f"shard {shard_id}: {counts['total']:,} records, {counts['applied']:,} applied")

    async with make_client(args) as client:
        try:
            report = await run_worker(
                client, dsn, args.job, worker_id=args.worker_id, lease_s=args.lease,
                wait_for_others=not args.no_wait, on_shard=on_shard,
            )  # fmt: skip
        except LookupError as exc:
            raise UsageError(str(exc)) from None
        except ShardError as exc:
            # An error: shown with --quiet too, and its status from the table
            # (a rejected key is 2, an unreachable API 3, ...).
            err(f"wesog-async {NAME}: {exc}")
            return shard_exit_code(exc.error)
        except ValueError as exc:  # not a postgresql:// URL, or refused (role, password, ...)
            raise UsageError(str(exc)) from None
        except OSError as exc:
            return unreachable(NAME, exc)
    out(
        {
            "worker": report.worker_id, "shards": report.shards, "takeovers": report.takeovers,
            "lost": report.lost, "records": report.records, "elapsed_s": round(report.elapsed, 3),
        }
    )  # fmt: skip
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    with library_logs(args):
        return run_loop(_worker(args))


run = guarded(_run)

__all__ = ["NAME", "add", "run"]
