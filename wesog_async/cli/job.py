"""``wesog-async job``: create a scale-out job, and show its status."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any, Final

from wesog_async.cli._common import (
    EXIT_CONNECTION,
    EXIT_FAILED,
    EXIT_OK,
    INPUT_FORMATS,
    HelpFormatter,
    UsageError,
    err,
    exit_code_epilog,
    guarded,
    info,
    out,
    run_loop,
    warn,
)
from wesog_async.scale import JobExistsError, JobSpec, connect, create_job, job_status, plan_shards

NAME: Final = "job"
ENV_JOURNAL: Final = "WESOG_JOURNAL"


def add_journal(parser: argparse.ArgumentParser) -> None:
    """``--journal DSN`` (the job database), shared with ``worker``."""
    parser.add_argument(
        "--journal",
        metavar="DSN",
        help=f"the job database, a postgresql:// URL (default: ${ENV_JOURNAL})",
    )


def journal_of(args: argparse.Namespace) -> str:
    dsn: str | None = args.journal or os.environ.get(ENV_JOURNAL)
    if not dsn:
        raise UsageError(f"give the job database with --journal postgresql://... or ${ENV_JOURNAL}")
    return dsn


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        NAME,
        help="scale-out jobs: create, status",
        description="A scale-out job: shards of input in a PostgreSQL database, drained by "
        "any number of `wesog-async worker` processes.",
        epilog=exit_code_epilog(),
        formatter_class=HelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="record a job and its shards",
        description="Record JOB: one shard per input file (files, directories or glob "
        "patterns), or line / byte ranges of one large JSON Lines or id file. Running it "
        "again with the same shards and options does nothing.",
        epilog=exit_code_epilog(),
        formatter_class=HelpFormatter,
    )
    create.add_argument("job", metavar="JOB", help="the job's name")
    create.add_argument("inputs", nargs="+", metavar="INPUT", help="input files, dirs or globs")
    create.add_argument(
        "--format", choices=INPUT_FORMATS, help="input format (default: by extension)"
    )
    ranges = create.add_mutually_exclusive_group()
    ranges.add_argument("--lines-per-shard", type=int, metavar="N", help="split one file by lines")
    ranges.add_argument("--bytes-per-shard", type=int, metavar="N", help="split one file by bytes")
    create.add_argument(
        "--mode", choices=("create", "replace", "modify", "delete"), default="create",
        help="the write",
    )  # fmt: skip
    create.add_argument("--strict", action="store_true", help="strict writes (never resent)")
    create.add_argument("--batch-size", type=int, metavar="N", help="records per request")
    create.add_argument(
        "--concurrency",
        type=int,
        default=4,
        metavar="N",
        help="write requests in flight per worker",
    )
    create.add_argument(
        "--max-pending-ops", type=int, default=16, metavar="N",
        help="operations unfinished per worker",
    )  # fmt: skip
    add_journal(create)
    create.add_argument("-q", "--quiet", action="store_true", help="nothing on stderr but errors")

    status = actions.add_parser(
        "status",
        help="shards done / leased / pending, records per bucket, throughput, stuck leases",
        description="Show where JOB stands (a summary on stderr, or JSON with --json).",
        epilog=exit_code_epilog(),
        formatter_class=HelpFormatter,
    )
    status.add_argument("job", metavar="JOB", help="the job's name")
    status.add_argument("--json", action="store_true", help="one JSON object on stdout")
    status.add_argument(
        "--watch", type=float, metavar="S", help="repeat every S seconds until the job is complete"
    )
    add_journal(status)


def _render(status: Any) -> str:
    b = status.buckets()
    lines = [
        f"job {status.job!r} ({status.mode}{', strict' if status.strict else ''}): "
        f"{status.count('done')} done, {status.count('leased')} leased, "
        f"{status.count('pending')} pending of {len(status.shards)} shards"
        f"{' - complete' if status.complete else ''}",
        f"  records: {b['applied']:,} applied, {b['failed']:,} failed, {b['invalid']:,} invalid, "
        f"{b['unknown']:,} unknown, {b['not_sent']:,} not sent ({b['resent']:,} resent)",
        f"  throughput: {status.records_read:,} records read in {status.elapsed_s:.1f} s "
        f"({status.records_per_s:,.0f} records/s)",
    ]
    for s in status.shards:
        if s.state == "leased":
            left = s.lease_left_s or 0.0
            note = f"STUCK, lease expired {-left:.1f} s ago" if left < 0 else f"lease {left:.1f} s"
            applied = "" if s.journaled is None else f", {s.journaled['applied']:,} applied"
            lines.append(
                f"  shard {s.shard_id} {s.describe}: {s.owner}, {s.records_read:,} read"
                f"{applied}, {note}"
            )
        elif s.error:
            lines.append(f"  shard {s.shard_id} {s.describe}: {s.state}, last error: {s.error}")
    return "\n".join(lines)


async def _create(args: argparse.Namespace) -> int:

    try:
        shards = plan_shards(
            args.inputs, fmt=args.format, lines_per_shard=args.lines_per_shard,
            bytes_per_shard=args.bytes_per_shard,
        )  # fmt: skip
        spec = JobSpec(
            mode=args.mode, strict=args.strict, batch_size=args.batch_size,
            max_in_flight=args.concurrency, max_pending_ops=args.max_pending_ops,
        )  # fmt: skip
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.mode != "create" and not args.strict:
        warn(
            args,
            f"--mode {args.mode} without --strict: ids missing on the server are ignored "
            "and counted as applied (add --strict to report them as failed)",
        )
    pool = await _connect(connect, journal_of(args))
    try:
        created = await create_job(pool, args.job, shards, spec)
    except (JobExistsError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    finally:
        await pool.close()
    verb = "created" if created else "exists already, unchanged"
    info(args, f"job {args.job!r} {verb}: {len(shards)} shard(s); start workers with "
               f"`wesog-async worker --journal DSN {args.job}`")  # fmt: skip
    out({"job": args.job, "created": created, "shards": len(shards)})
    return EXIT_OK


class DatabaseUnreachableError(Exception):
    """The job database could not be reached (exit status 3, a connection failure)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(f"cannot reach the job database: {error}")


def unreachable(command: str, exc: DatabaseUnreachableError | OSError) -> int:
    """Report an unreachable job database (shown with --quiet too): exit status 3."""
    message = exc if isinstance(exc, DatabaseUnreachableError) else DatabaseUnreachableError(exc)
    err(f"wesog-async {command}: {message}")
    return EXIT_CONNECTION


async def _connect(connect: Any, dsn: str) -> Any:
    try:
        return await connect(dsn)
    except ValueError as exc:  # not a postgresql:// URL, or refused (role, password, database)
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise DatabaseUnreachableError(exc) from None


async def _status(args: argparse.Namespace) -> int:

    if args.watch is not None and args.watch <= 0:
        raise UsageError("--watch must be a positive number of seconds")
    pool = await _connect(connect, journal_of(args))
    try:
        while True:
            try:
                status = await job_status(pool, args.job)
            except LookupError as exc:
                raise UsageError(str(exc)) from None
            if args.json:
                out(status.as_dict())
            else:
                print(_render(status), file=sys.stderr, flush=True)
            if args.watch is None or status.complete:
                return EXIT_OK if status.complete or args.watch is None else EXIT_FAILED
            await asyncio.sleep(args.watch)
    finally:
        await pool.close()


def _run(args: argparse.Namespace) -> int:
    try:
        return run_loop(_create(args) if args.action == "create" else _status(args))
    except DatabaseUnreachableError as exc:
        return unreachable(NAME, exc)


run = guarded(_run)

__all__ = [
    "ENV_JOURNAL",
    "EXIT_FAILED",
    "NAME",
    "DatabaseUnreachableError",
    "add",
    "add_journal",
    "journal_of",
    "run",
    "unreachable",
]
