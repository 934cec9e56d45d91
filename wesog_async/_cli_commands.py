"""The client subcommands of ``wesog-async``: upload, demo, delete, get, search, ops.

Conventions: data goes to stdout as JSON Lines; progress and messages go to
stderr (rich bars on a terminal, plain lines otherwise). Exit status: 0 when
everything applied, 1 when some records failed (or were invalid, unknown or
not sent), 2 for usage and authentication errors, 130 after Ctrl-C. The API
key comes from ``--api-key`` or ``WESOG_API_KEY`` and is never printed.

Each subcommand is an ``_add_<name>`` / ``_cmd_<name>`` pair, registered in
:data:`SUBCOMMANDS` (merged into ``wesog_async.cli``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import IO, Any, Final, TypeVar

from wesog_async import _wire as wire
from wesog_async._bulk import IngestReport, IngestStream, RecordError, ingest
from wesog_async._client import WesogClient
from wesog_async._convert import unstructure
from wesog_async._errors import AuthenticationError, OperationTimeoutError, WesogError
from wesog_async._inputs import FORMATS, RecordSource, ThreadedSource, open_records
from wesog_async._progress import make_display

T = TypeVar("T")

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
DEMO_FAILED_OUT: Final = "wesog-demo-failed.jsonl"


class UsageError(Exception):
    """A problem with the command line or the configuration (exit status 2)."""


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop when installed. Ctrl-C cancels it (so that its
    cleanup runs), then raises ``KeyboardInterrupt`` here."""
    try:
        import uvloop
    except ImportError:
        runner = asyncio.Runner()
    else:
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    with runner:
        return runner.run(coro)


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _out(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, default=str), flush=True)


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the errors a command can meet into a message and an exit status."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except UsageError as exc:
            _err(f"wesog-async {args.command}: error: {exc}")
            return EXIT_USAGE
        except AuthenticationError as exc:
            _err(
                f"wesog-async {args.command}: authentication failed ({exc.status}): check "
                f"--api-key or ${wire.ENV_API_KEY}"
            )
            return EXIT_USAGE
        except WesogError as exc:
            _err(f"wesog-async {args.command}: {exc}")
            return EXIT_FAILED
        except KeyboardInterrupt:
            _err("Interrupted.")
            return EXIT_INTERRUPTED

    return run


# -- shared options ----------------------------------------------------------------


def _add_connection(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--api-key", metavar="KEY", help=f"API key (default: ${wire.ENV_API_KEY}; never printed)"
    )
    group.add_argument(
        "--base-url",
        metavar="URL",
        help=f"API root (default: ${wire.ENV_BASE_URL} or {wire.DEFAULT_BASE_URL})",
    )


def _client(args: argparse.Namespace, **options: Any) -> WesogClient:
    try:
        return WesogClient(api_key=args.api_key, base_url=args.base_url, **options)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _list_arg(values: list[str] | None) -> list[str] | None:
    """``--fields a,b --fields c`` → ``["a", "b", "c"]``."""
    if not values:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


# -- upload ------------------------------------------------------------------------


def _add_upload(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "upload",
        help="upload (create/replace/modify/delete) images from a JSONL or CSV file",
        description=(
            "Stream records from FILE (JSON Lines, CSV, or one id per line for deletes; "
            "'-' reads stdin) to the API in batches, with live progress on stderr. "
            "Problem records go to --failed-out (or stdout) as JSON Lines with their "
            "line number and reason; a summary line goes to stdout."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="input file, or - for stdin")
    parser.add_argument("--format", choices=FORMATS, help="input format (default: by extension)")
    parser.add_argument(
        "--mode", choices=("create", "replace", "modify", "delete"), default="create"
    )
    parser.add_argument("--batch-size", type=int, default=100, metavar="N")
    parser.add_argument(
        "--concurrency", type=int, default=4, metavar="N", help="write requests in flight"
    )
    parser.add_argument(
        "--max-pending", type=int, default=16, metavar="N", help="operations pending at once"
    )
    parser.add_argument(
        "--journal",
        metavar="PATH",
        help="SQLite journal: makes the upload resumable (run again with the same FILE)",
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="with --journal: resend the records that failed (or were invalid) last time",
    )
    parser.add_argument(
        "--failed-out",
        metavar="FILE",
        help="write failed, invalid and unknown records here (JSON Lines) instead of stdout",
    )
    parser.add_argument("--urgent", action="store_true", help="put operations first in the queue")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="create fails on existing ids; replace/modify/delete fail on missing ids",
    )
    parser.add_argument("--lang", choices=sorted(wire.WRITE_LANGS), help="language of AI tags")
    parser.add_argument(
        "--emulator",
        action="store_true",
        help="upload to an embedded emulator started for this command (try things locally)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument(
        "--verbose", action="store_true", help="log retries, throttling and splits to stderr"
    )
    _add_connection(parser)


@contextlib.contextmanager
def _logging(verbose: bool) -> Iterator[None]:
    """The CLI reports outcomes itself; library log lines show only with --verbose."""
    logger = logging.getLogger("wesog_async")
    level = logger.level
    handler: logging.Handler
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.setLevel(logging.INFO)
    else:
        handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


class _Upload:
    """One ``upload`` run; keeps what an interrupted run needs to report."""

    def __init__(self, args: argparse.Namespace, source: RecordSource | ThreadedSource) -> None:
        self.args = args
        self.source = source
        self.stream: IngestStream | None = None
        self.started = time.monotonic()

    async def main(self) -> int:
        args = self.args
        async with contextlib.AsyncExitStack() as stack:
            if args.emulator:
                from wesog_async.emulator import EmulatorConfig, EmulatorServer

                server = await stack.enter_async_context(
                    EmulatorServer(EmulatorConfig(api_keys=("local-emulator",)))
                )
                client = WesogClient(api_key=server.api_key, base_url=server.url)
                _err(
                    f"Uploading to an embedded emulator at {server.url}: nothing leaves this "
                    "machine, and its data is gone when the command ends."
                )
            else:
                client = _client(args)
            await stack.enter_async_context(client)
            label = "upload" if args.mode == "create" else f"upload ({args.mode})"
            display = stack.enter_context(make_display(label, quiet=args.quiet))
            try:
                self.stream = ingest(
                    client,
                    self.source,
                    mode=args.mode,
                    batch_size=args.batch_size,
                    max_in_flight=args.concurrency,
                    max_pending_ops=args.max_pending,
                    urgent=args.urgent,
                    strict=args.strict,
                    lang=args.lang,
                    journal=args.journal,
                    retry_failed=args.retry_failed,
                    on_progress=display.update,
                )
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            try:
                async with self.stream as stream:
                    async for _ in stream:
                        pass
            except WesogError:
                pass  # on the report, handled below
            except ValueError as exc:  # journal mode or input mismatch
                raise UsageError(str(exc)) from None
        return self.finish(self.stream.report)

    def finish(self, report: IngestReport, *, interrupted: bool = False) -> int:
        args = self.args
        written = _write_problems(report, self.source, args.failed_out)
        summary = report.summary()
        if args.journal:
            summary["journal"] = args.journal
        if args.failed_out:
            summary["failed_out"] = args.failed_out
        summary["interrupted"] = interrupted
        _out({"summary": summary})
        _err(_human_summary(report, "Interrupted" if interrupted else "Done"))
        if written and args.failed_out:
            _err(f"{written:,} problem record(s) written to {args.failed_out}")
        if interrupted:
            _err(self._resume_hint(report))
            return EXIT_INTERRUPTED
        if isinstance(report.error, AuthenticationError):
            _err(f"Authentication failed: check --api-key or ${wire.ENV_API_KEY}.")
            return EXIT_USAGE
        if report.error is not None:
            _err(f"Stopped: {report.error}")
        return EXIT_OK if report.ok else EXIT_FAILED

    def interrupted(self) -> int:
        if self.stream is None:
            _err("Interrupted before the upload started.")
            return EXIT_INTERRUPTED
        return self.finish(self.stream.report, interrupted=True)

    def _resume_hint(self, report: IngestReport) -> str:
        args = self.args
        pending = sorted({e.op_id for e in report.unknown_items if e.op_id is not None})
        lines = []
        if pending:
            shown = ", ".join(map(str, pending[:10])) + (" …" if len(pending) > 10 else "")
            lines.append(
                f"{len(pending)} operation(s) were still pending on the server (op ids {shown}); "
                "they go on there."
            )
        if args.emulator:
            lines.append("The embedded emulator is gone with its data: there is nothing to resume.")
            return "\n".join(lines)
        if args.file == "-":
            lines.append("To resume, feed the same input again with the same --journal.")
        if args.journal and args.file != "-":
            command = ["wesog-async", "upload", args.file, "--journal", args.journal]
            if args.mode != "create":
                command += ["--mode", args.mode]
            if args.format:
                command += ["--format", args.format]
            lines.append(
                f"Resume with: {shlex.join(command)}\n"
                "(the journal skips what was applied and follows the pending operations)"
            )
        elif not args.journal:
            lines.append(
                "Running the same command again resends everything (safe for non-strict "
                "writes: they are upserts). Add --journal FILE to make uploads resumable."
            )
        return "\n".join(lines)


def _problems(report: IngestReport) -> Iterator[tuple[str, RecordError]]:
    for status, items in (
        ("failed", report.failed_items),
        ("invalid", report.invalid_items),
        ("unknown", report.unknown_items),
        ("not_sent", report.not_sent_items),
    ):
        for item in items:
            yield status, item


def _problem_line(
    status: str, item: RecordError, source: RecordSource | ThreadedSource | None
) -> dict[str, Any]:
    line: dict[str, Any] = {"status": status, "position": item.position}
    if source is not None:
        line["line"] = source.line_of(item.position)
    line.update(id=item.image_id, reason=item.message)
    if item.field is not None:
        line["field"] = item.field
    if item.op_id is not None:
        line["op_id"] = item.op_id
    record = item.record
    if isinstance(record, dict | str | list | int | float | bool):
        line["record"] = record
    elif hasattr(record, "to_dict"):
        line["record"] = record.to_dict()
    return line


def _write_problems(
    report: IngestReport, source: RecordSource | ThreadedSource | None, path: str | None
) -> int:
    """Write the problem records as JSON Lines (to ``path``, or stdout)."""
    count = 0
    stream: IO[str]
    with contextlib.ExitStack() as stack:
        if path is not None:
            stream = stack.enter_context(open(path, "w", encoding="utf-8"))
        else:
            stream = sys.stdout
        for status, item in _problems(report):
            line = _problem_line(status, item, source)
            stream.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
            count += 1
        stream.flush()
    return count


def _human_summary(report: IngestReport, verb: str) -> str:
    parts = [f"{report.applied:,} applied"]
    for label, value in (
        ("failed", report.failed),
        ("invalid", report.invalid),
        ("outcome unknown", report.unknown),
        ("not sent", report.not_sent),
    ):
        if value:
            parts.append(f"{value:,} {label}")
    extra = f"; {report.resumed:,} already done per the journal" if report.resumed else ""
    return (
        f"{verb}: {report.total:,} records in {report.elapsed:.1f} s: {', '.join(parts)} "
        f"({report.ops:,} operation{'' if report.ops == 1 else 's'}, "
        f"{report.records_per_s:,.0f} records/s{extra})"
    )


def _cmd_upload(args: argparse.Namespace) -> int:
    if args.emulator and (args.api_key or args.base_url):
        raise UsageError("--emulator uploads locally: leave out --api-key and --base-url")
    if not args.emulator and not (args.api_key or os.environ.get(wire.ENV_API_KEY)):
        raise UsageError(
            f"no API key: pass --api-key KEY or set {wire.ENV_API_KEY}. To try it locally, "
            f"add --emulator (an embedded emulator): wesog-async upload {args.file} --emulator"
        )
    if args.retry_failed and not args.journal:
        raise UsageError("--retry-failed needs --journal (it resends what the journal says failed)")
    for name in ("batch_size", "concurrency", "max_pending"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    try:
        source = open_records(args.file, args.format)
    except (OSError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    upload = _Upload(args, source)
    with source, _logging(args.verbose):
        try:
            return run_loop(upload.main())
        except KeyboardInterrupt:
            return upload.interrupted()


# -- demo --------------------------------------------------------------------------

_CITIES: Final = (
    ("Lisbon", "Portugal"),
    ("Madrid", "Spain"),
    ("Lyon", "France"),
    ("Kyoto", "Japan"),
    ("Quito", "Ecuador"),
    ("Oslo", "Norway"),
)
_KEYWORDS: Final = ("street", "portrait", "sunset", "market", "river", "dog", "bicycle", "rain")


def demo_records(count: int) -> tuple[Iterator[dict[str, Any]], int, int]:
    """Synthetic images: ``(records, unreachable, invalid)``. Every 500th record
    points at an unreachable host (``*.invalid``, failed by the server); two
    are invalid (caught by the client) when ``count`` allows."""
    unreachable = count // 500
    invalid_at = {count // 3, (2 * count) // 3} if count >= 6 else set()

    def generate() -> Iterator[dict[str, Any]]:
        for i in range(count):
            city, country = _CITIES[i % len(_CITIES)]
            record: dict[str, Any] = {
                "id": f"demo-{i:06d}",
                "src": f"https://images.example.com/demo/{i:06d}.jpg",
                "title": f"Demo image #{i}",
                "city": city,
                "country": country,
                "date": f"20{10 + i % 15:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}",
                "keywords": [_KEYWORDS[i % 8], _KEYWORDS[(i // 8) % 8]],
                "nsfw": False,
            }
            if i % 500 == 499:
                record["src"] = f"https://cdn.unreachable.invalid/demo/{i:06d}.jpg"
            if i in invalid_at:
                if i == min(invalid_at):
                    del record["src"]  # required: the client refuses it
                else:
                    record["nsfw"] = "maybe"  # wrong type
            yield record

    return generate(), unreachable, len(invalid_at)


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "demo",
        help="upload synthetic images to an embedded emulator, with live progress",
        description=(
            "Start an emulator in this process, generate COUNT synthetic images (a few "
            "deliberately bad), upload them with live progress, and summarize. Nothing "
            "leaves this machine; no API key needed."
        ),
    )
    parser.add_argument("--count", type=int, default=10_000, metavar="N")
    parser.add_argument(
        "--item-delay-ms",
        type=float,
        default=0.1,
        metavar="MS",
        help="server time per image (default 0.1)",
    )
    parser.add_argument("--batch-size", type=int, default=100, metavar="N")
    parser.add_argument(
        "--failed-out",
        default=DEMO_FAILED_OUT,
        metavar="FILE",
        help=f"where failed and invalid records go (default ./{DEMO_FAILED_OUT})",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")


async def _demo(args: argparse.Namespace) -> int:
    from wesog_async.emulator import EmulatorConfig, EmulatorServer

    records, unreachable, invalid = demo_records(args.count)
    config = EmulatorConfig(api_keys=("demo",), item_delay_ms=args.item_delay_ms)
    async with (
        EmulatorServer(config) as server,
        WesogClient(api_key=server.api_key, base_url=server.url) as client,
    ):
        print(
            f"Wesog demo: {args.count:,} synthetic images → an embedded emulator at {server.url}\n"
            f"  · {unreachable} point at an unreachable host (*.invalid): the server fails them\n"
            f"  · {invalid} are invalid (a missing src, a wrong type): never sent\n",
            flush=True,
        )
        with make_display("demo", total=args.count, quiet=args.quiet) as display:
            stream = ingest(client, records, batch_size=args.batch_size, on_progress=display.update)
            async with stream:
                async for _ in stream:
                    pass
        report = stream.report
    written = _write_problems(report, None, args.failed_out)
    width = len(f"{report.total:,}")
    print(
        f"\nDone: {report.total:,} records in {report.elapsed:.1f} s "
        f"({report.records_per_s:,.0f} records/s, {report.ops} operations)\n"
        f"  applied  {report.applied:>{width},}\n"
        f"  failed   {report.failed:>{width},}   (server side: src unreachable)\n"
        f"  invalid  {report.invalid:>{width},}   (caught before sending)"
    )
    if written:
        print(
            f"\nThe {written} failed and invalid records are in {args.failed_out}, one JSON "
            "object per line with its position and reason."
        )
    print(
        "\nNext: run a local API with `wesog-async emulator`, or upload your own file "
        "with `wesog-async upload images.jsonl --emulator`."
    )
    expected = report.failed == unreachable and report.invalid == invalid and not report.aborted
    return EXIT_OK if expected and report.applied + report.failed + invalid == args.count else 1


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.count < 0 or args.batch_size < 1 or args.item_delay_ms < 0:
        raise UsageError("--count and --item-delay-ms must be >= 0, --batch-size >= 1")
    return run_loop(_demo(args))


# -- delete, get, search -------------------------------------------------------------


def _add_delete(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "delete",
        help="delete images by id (one operation)",
        description="Delete the images and print the finished operation (JSON). "
        "For many ids, use `upload --mode delete FILE`.",
    )
    parser.add_argument("ids", nargs="+", metavar="ID")
    parser.add_argument("--strict", action="store_true", help="missing ids are errors")
    parser.add_argument("--urgent", action="store_true")
    _add_connection(parser)


async def _delete(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        fut = await client.images.delete_many(args.ids, strict=args.strict, urgent=args.urgent)
        op = await fut
    _out(_compact(unstructure(op)))
    for error in fut.failed:
        _err(f"{error.image_id}: {error.msg}")
    return EXIT_OK if op.num_bad == 0 else EXIT_FAILED


def _cmd_delete(args: argparse.Namespace) -> int:
    return run_loop(_delete(args))


def _add_get(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("get", help="print one image (JSON)")
    parser.add_argument("id", metavar="ID")
    parser.add_argument(
        "--fields", action="append", metavar="F[,F]", help="only these fields (repeatable)"
    )
    _add_connection(parser)


async def _get(args: argparse.Namespace) -> int:
    fields = _list_arg(args.fields)
    async with _client(args) as client:
        try:
            image = await client.images.get(args.id, fields=fields)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    _out(_compact(unstructure(image)))
    return EXIT_OK


def _cmd_get(args: argparse.Namespace) -> int:
    return run_loop(_get(args))


def _add_search(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "search",
        help="search images; one JSON line per result",
        description="Print matching images as JSON Lines (null fields left out); with "
        "--count or --facets, a last line {count, facets}.",
    )
    parser.add_argument("q", nargs="?", default=None, metavar="Q", help="filter formula")
    parser.add_argument("--sort-by", metavar="FIELD")
    parser.add_argument("--order", choices=sorted(wire.SORT_ORDERS), dest="sort_order")
    parser.add_argument("--fields", action="append", metavar="F[,F]")
    parser.add_argument("--facets", action="append", metavar="F[,F]")
    parser.add_argument("--count", action="store_true", help="print the total hit count")
    parser.add_argument("--limit", type=int, metavar="N", help="results per page")
    parser.add_argument("--page", type=int, default=1, metavar="N")
    parser.add_argument("--lang", choices=sorted(wire.SEARCH_LANGS))
    parser.add_argument("--all", action="store_true", help="walk every page")
    _add_connection(parser)


async def _search(args: argparse.Namespace) -> int:
    fields = _list_arg(args.fields)
    facets = _list_arg(args.facets)
    options: dict[str, Any] = {"sort_by": args.sort_by, "sort_order": args.sort_order}
    async with _client(args) as client:
        try:
            meta = None
            if args.all:
                async for image in client.images.search_iter(
                    args.q, limit=args.limit or 500, fields=fields, lang=args.lang, **options
                ):
                    _out(_compact(unstructure(image)))
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
                    _out(_compact(unstructure(image)))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if meta is not None and (args.count or facets):
        _out({"count": meta.count, "facets": dict(meta.facets)})
    return EXIT_OK


def _cmd_search(args: argparse.Namespace) -> int:
    return run_loop(_search(args))


# -- ops ---------------------------------------------------------------------------


def _add_ops(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("ops", help="operations: get, list, cancel, wait")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (
        ("get", "print one operation's status"),
        ("cancel", "cancel an operation that has not started"),
        ("wait", "wait until an operation finishes, then print it"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("op_id", type=int, metavar="OP_ID")
        if name == "wait":
            action.add_argument("--timeout", type=float, metavar="S", help="give up after S s")
        _add_connection(action)
    listing = actions.add_parser("list", help="this API key's operations, newest first")
    listing.add_argument("--limit", type=int, metavar="N")
    listing.add_argument("--page", type=int, metavar="N")
    _add_connection(listing)


async def _ops(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        try:
            if args.action == "list":
                for op in await client.ops.list(limit=args.limit, page=args.page):
                    _out(_compact(unstructure(op)))
                return EXIT_OK
            if args.action == "get":
                op = await client.ops.get(args.op_id)
            elif args.action == "cancel":
                op = await client.ops.cancel(args.op_id)
            else:
                try:
                    op = await client.ops.wait(args.op_id, timeout=args.timeout)
                except OperationTimeoutError as exc:
                    _err(f"wesog-async ops wait: {exc}")
                    return EXIT_FAILED
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    _out(_compact(unstructure(op)))
    return EXIT_OK if args.action != "wait" or op.num_bad == 0 else EXIT_FAILED


def _cmd_ops(args: argparse.Namespace) -> int:
    return run_loop(_ops(args))


SUBCOMMANDS: Final[dict[str, tuple[Callable[[Any], None], Callable[[Any], int]]]] = {
    "upload": (_add_upload, _guarded(_cmd_upload)),
    "demo": (_add_demo, _guarded(_cmd_demo)),
    "delete": (_add_delete, _guarded(_cmd_delete)),
    "get": (_add_get, _guarded(_cmd_get)),
    "search": (_add_search, _guarded(_cmd_search)),
    "ops": (_add_ops, _guarded(_cmd_ops)),
}

__all__ = ["SUBCOMMANDS", "UsageError", "demo_records"]
