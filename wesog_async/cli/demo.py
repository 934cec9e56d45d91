"""``wesog-async demo``: synthetic images to an embedded emulator, with live
progress. Its report goes to stdout; the failed and invalid records go to a
file in a fresh temporary directory (or ``--failed-out``), never to the
working directory."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from wesog_async import WesogClient, ingest
from wesog_async.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    HelpFormatter,
    UsageError,
    exit_code_epilog,
    guarded,
    run_loop,
)
from wesog_async.cli._report import problems, write_problems
from wesog_async.cli.progress import add_progress_options, display_for
from wesog_async.emulator import EmulatorConfig, EmulatorServer

NAME: Final = "demo"
FAILED_OUT_NAME: Final = "wesog-demo-failed.jsonl"

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


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        NAME,
        help="upload synthetic images to an embedded emulator, with live progress",
        description=(
            "Start an emulator in this process, generate COUNT synthetic images (a few "
            "deliberately bad), upload them with live progress, and summarize. Nothing "
            "leaves this machine; no API key needed."
        ),
        epilog=exit_code_epilog(),
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--count", type=int, default=10_000, metavar="N", help="synthetic images to upload"
    )
    parser.add_argument(
        "--item-delay-ms", type=float, default=0.1, metavar="MS", help="server time per image"
    )
    parser.add_argument(
        "--batch-size", type=int, default=100, metavar="N", help="records per request"
    )
    parser.add_argument(
        "--failed-out",
        metavar="FILE",
        help=f"where the failed and invalid records go (default: {FAILED_OUT_NAME} in a new "
        "temporary directory; the demo prints the path)",
    )
    add_progress_options(parser)


def _failed_out(args: argparse.Namespace) -> str:
    if args.failed_out:
        return str(args.failed_out)
    return str(Path(tempfile.mkdtemp(prefix="wesog-demo-")) / FAILED_OUT_NAME)


async def _demo(args: argparse.Namespace) -> int:
    records, unreachable, invalid = demo_records(args.count)
    config = EmulatorConfig(api_keys=("demo",), item_delay_ms=args.item_delay_ms)
    async with (
        EmulatorServer(config) as server,
        WesogClient(api_key=server.api_key, base_url=server.url) as client,
    ):
        print(
            f"Wesog demo: {args.count:,} synthetic images → an embedded emulator at {server.url}\n"
            f"  · {unreachable:,} point at an unreachable host (*.invalid): the server fails them\n"
            f"  · {invalid:,} are invalid (a missing src, a wrong type): never sent\n",
            flush=True,
        )
        with display_for(args, NAME, total=args.count) as display:
            stream = ingest(client, records, batch_size=args.batch_size, on_progress=display.update)
            async with stream:
                async for _ in stream:
                    pass
        report = stream.report
    width = len(f"{report.total:,}")
    print(
        f"\nDone: {report.total:,} records in {report.elapsed:.1f} s "
        f"({report.records_per_s:,.0f} records/s, {report.ops:,} operations)\n"
        f"  applied  {report.applied:>{width},}\n"
        f"  failed   {report.failed:>{width},}   (server side: src unreachable)\n"
        f"  invalid  {report.invalid:>{width},}   (caught before sending)"
    )
    path = _failed_out(args) if args.failed_out or any(True for _ in problems(report)) else None
    written = write_problems(report, None, path) if path is not None else 0
    if written:
        print(
            f"\nThe {written:,} failed and invalid records are in {path}, one JSON "
            "object per line with its position and reason."
        )
    print(
        "\nNext: run a local API with `wesog-async emulator`, or upload your own file "
        "with `wesog-async upload images.jsonl` (no API key: an embedded emulator)."
    )
    expected = report.failed == unreachable and report.invalid == invalid and not report.aborted
    ok = expected and report.applied + report.failed + invalid == args.count
    return EXIT_OK if ok else EXIT_FAILED


def _run(args: argparse.Namespace) -> int:
    if args.count < 0 or args.batch_size < 1 or args.item_delay_ms < 0:
        raise UsageError("--count and --item-delay-ms must be >= 0, --batch-size >= 1")
    return run_loop(_demo(args))


run = guarded(_run)

__all__ = ["FAILED_OUT_NAME", "NAME", "add", "demo_records", "run"]
