"""``wesog-async upload``: stream records from a file to the API in batches.

Without an API key (and without a base URL) it runs against an embedded
emulator, as ``--emulator`` does, and says so on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
from collections.abc import AsyncIterable, Iterable
from typing import Any, Final

from wesog_async import (
    AuthenticationError,
    IngestReport,
    IngestStream,
    JournalMismatchError,
    WesogClient,
    WesogError,
    ingest,
    open_records,
)
from wesog_async.cli._common import (
    ENV_API_KEY,
    ENV_BASE_URL,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    INPUT_FORMATS,
    WRITE_LANGS,
    HelpFormatter,
    UsageError,
    add_connection,
    add_logging,
    base_url_of,
    err,
    exit_code_epilog,
    exit_code_for,
    guarded,
    info,
    make_client,
    out,
    run_loop,
    warn,
)
from wesog_async.cli._logging import library_logs
from wesog_async.cli._report import LineOf, human_summary, write_problems
from wesog_async.cli.progress import add_progress_options, display_for
from wesog_async.emulator import EmulatorConfig, EmulatorServer

NAME: Final = "upload"
MODES: Final = ("create", "replace", "modify", "delete")
_EMULATOR_KEY: Final = "local-emulator"


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        NAME,
        help="upload (create/replace/modify/delete) images from a JSONL or CSV file",
        description=(
            "Stream records from FILE (JSON Lines, CSV, or one id per line for deletes; "
            "'-' reads stdin) to the API in batches, with live progress on stderr. "
            "Problem records go to --failed-out (or stdout) as JSON Lines with their "
            "line number and reason; a summary line goes to stdout.\n\n"
            f"Without an API key (--api-key or ${ENV_API_KEY}) the upload runs against an "
            "embedded emulator and says so on stderr: nothing leaves the machine."
        ),
        epilog=exit_code_epilog(),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="input file, or - for stdin")
    parser.add_argument(
        "--format", choices=INPUT_FORMATS, help="input format (default: from the extension)"
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="create",
        help="the write: create (POST), replace (PUT), modify (PATCH) or delete",
    )
    parser.add_argument(
        "--batch-size", type=int, default=100, metavar="N", help="records per request"
    )
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
        help="create fails on existing ids; replace/modify/delete fail on missing ids "
        "(without it, missing ids are ignored by the server and counted applied)",
    )
    parser.add_argument(
        "--lang", choices=WRITE_LANGS, help="language of AI tags (default: the server's)"
    )
    parser.add_argument(
        "--emulator",
        action="store_true",
        help="upload to an embedded emulator started for this command (the default when "
        "no API key is set)",
    )
    add_progress_options(parser)
    add_logging(parser)
    add_connection(parser)


class Upload:
    """One ``upload`` run; keeps what an interrupted run needs to report."""

    def __init__(
        self,
        args: argparse.Namespace,
        source: Iterable[Any] | AsyncIterable[Any],
        line_of: LineOf,
        *,
        embedded: bool,
    ) -> None:
        self.args = args
        self.source = source
        self.line_of = line_of
        self.embedded = embedded
        self.stream: IngestStream | None = None

    async def main(self) -> int:
        args = self.args
        async with contextlib.AsyncExitStack() as stack:
            if self.embedded:
                server = await stack.enter_async_context(
                    EmulatorServer(EmulatorConfig(api_keys=(_EMULATOR_KEY,)))
                )
                client = WesogClient(api_key=server.api_key, base_url=server.url)
                self._announce(server.url)
            else:
                client = make_client(args)
            await stack.enter_async_context(client)
            label = NAME if args.mode == "create" else f"{NAME} ({args.mode})"
            display = stack.enter_context(display_for(args, label))
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
            except JournalMismatchError as exc:  # journal mode or input mismatch
                raise UsageError(str(exc)) from None
            except WesogError:
                pass  # on the report, handled below
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        return self.finish(self.stream.report)

    def _announce(self, url: str) -> None:
        where = (
            f"an embedded emulator at {url}: nothing leaves this machine, and its data is "
            "gone when the command ends."
        )
        if self.args.emulator:
            info(self.args, f"Uploading to {where}")
        else:
            # Always shown, --quiet or not: the data is not going where a user
            # who forgot the key may think.
            err(
                f"wesog-async {NAME}: no API key (--api-key or ${ENV_API_KEY}): uploading to "
                f"{where}"
            )

    def finish(self, report: IngestReport, *, interrupted: bool = False) -> int:
        args = self.args
        written = write_problems(report, self.line_of, args.failed_out)
        summary = report.summary()
        if args.journal:
            summary["journal"] = args.journal
        if args.failed_out:
            summary["failed_out"] = args.failed_out
        if self.embedded:
            summary["emulator"] = True
        summary["interrupted"] = interrupted
        out({"summary": summary})
        info(args, human_summary(report, "Interrupted" if interrupted else "Done"))
        if written and args.failed_out:
            info(args, f"{written:,} problem record(s) written to {args.failed_out}")
        if interrupted:
            info(args, self.resume_hint(report))
            return EXIT_INTERRUPTED
        if isinstance(report.error, AuthenticationError):
            err(f"Authentication failed: check --api-key or ${ENV_API_KEY}.")
            return exit_code_for(report.error)
        if report.error is not None:
            err(f"Stopped: {report.error}")
            return exit_code_for(report.error)
        return EXIT_OK if report.ok else EXIT_FAILED

    def interrupted(self) -> int:
        if self.stream is None:
            err("Interrupted before the upload started.")
            return EXIT_INTERRUPTED
        return self.finish(self.stream.report, interrupted=True)

    def resume_command(self) -> list[str]:
        """The command line that resumes this upload: every option that changes
        what is sent, how, or where (the API key is never repeated)."""
        args = self.args
        command = ["wesog-async", NAME, args.file]
        if args.journal:
            command += ["--journal", args.journal]
        for flag, value, default in (
            ("--format", args.format, None),
            ("--mode", args.mode, "create"),
            ("--batch-size", args.batch_size, 100),
            ("--concurrency", args.concurrency, 4),
            ("--max-pending", args.max_pending, 16),
            ("--lang", args.lang, None),
            ("--failed-out", args.failed_out, None),
            ("--base-url", args.base_url, None),
            ("--retries", args.retries, 5),
        ):
            if value != default:
                command += [flag, str(value)]
        for flag, on in (
            ("--strict", args.strict),
            ("--urgent", args.urgent),
            ("--retry-failed", args.retry_failed),
            ("--allow-insecure-http", args.allow_insecure_http),
        ):
            if on:
                command.append(flag)
        return command

    def resume_hint(self, report: IngestReport) -> str:
        args = self.args
        pending = sorted({e.op_id for e in report.unknown_items if e.op_id is not None})
        lines = []
        if pending:
            shown = ", ".join(map(str, pending[:10])) + (" …" if len(pending) > 10 else "")
            lines.append(
                f"{len(pending)} operation(s) were still pending on the server (op ids {shown}); "
                "they go on there."
            )
        if self.embedded:
            lines.append("The embedded emulator is gone with its data: there is nothing to resume.")
            return "\n".join(lines)
        if args.file == "-":
            lines.append("To resume, feed the same input again with the same --journal.")
        if args.journal and args.file != "-":
            key = " (and the same API key)" if args.api_key else ""
            lines.append(
                f"Resume with: {shlex.join(self.resume_command())}{key}\n"
                "(the journal skips what was applied and follows the pending operations)"
            )
        elif not args.journal:
            lines.append(
                "Running the same command again resends everything (safe for non-strict "
                "writes: they are upserts). Add --journal FILE to make uploads resumable."
            )
        return "\n".join(lines)


def _embedded(args: argparse.Namespace) -> bool:
    """Whether this upload goes to an embedded emulator (explicitly, or for want
    of an API key)."""
    if args.emulator:
        if args.api_key or args.base_url:
            raise UsageError("--emulator uploads locally: leave out --api-key and --base-url")
        return True
    if args.api_key or os.environ.get(ENV_API_KEY):
        return False
    if base_url_of(args):
        raise UsageError(
            f"no API key for {base_url_of(args)}: pass --api-key KEY or set {ENV_API_KEY} "
            f"(without a key and without --base-url/${ENV_BASE_URL}, upload runs against an "
            "embedded emulator)"
        )
    if args.journal:
        # The journal would record as applied what only reached a throwaway
        # emulator, and a later run with the key would skip those records.
        raise UsageError(
            f"no API key (--api-key or ${ENV_API_KEY}): refusing --journal against the "
            "embedded emulator, whose journal would skip these records on a later run "
            "with the key; add --emulator to do it on purpose"
        )
    return True


def _run(args: argparse.Namespace) -> int:
    embedded = _embedded(args)
    if args.retry_failed and not args.journal:
        raise UsageError("--retry-failed needs --journal (it resends what the journal says failed)")
    for name in ("batch_size", "concurrency", "max_pending"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if args.mode != "create" and not args.strict:
        warn(
            args,
            f"--mode {args.mode} without --strict: ids missing on the server are ignored "
            "and counted as applied (add --strict to report them as failed)",
        )
    try:
        source = open_records(args.file, args.format)
    except (OSError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    upload = Upload(args, source, source.line_of, embedded=embedded)
    with source, library_logs(args):
        try:
            return run_loop(upload.main())
        except KeyboardInterrupt:
            return upload.interrupted()


run = guarded(_run)

__all__ = ["NAME", "Upload", "add", "run"]
