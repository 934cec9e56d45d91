"""Progress displays for the command line, all on stderr (stdout is for data):
a rich bar on a terminal, plain lines otherwise (logs, CI, pipes), or JSON
Lines for headless jobs (``--progress jsonl``).

A display is fed :class:`~wesog_async.Progress` snapshots (the ``on_progress``
callback of ``ingest``), at most every 100 ms.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import IO, Any, Final, Protocol

import attrs

from wesog_async import Progress
from wesog_async.cli._common import UsageError, add_quiet

try:
    from rich.console import Console
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar
except ImportError:  # rich is the optional ``cli`` extra
    HAVE_RICH = False
else:
    HAVE_RICH = True

# A plain line at most this often: enough to follow a long run in a log file.
_PLAIN_EVERY_S: Final = 2.0

PROGRESS_MODES: Final = ("auto", "bar", "plain", "jsonl", "none")


def describe(p: Progress, total: int | None = None) -> str:
    """One line of counters, e.g. for a log (``total``: records expected)."""
    read = f"{p.read:,} read of {total:,}" if total is not None else f"{p.read:,} read"
    parts = [read, f"{p.applied:,} applied"]
    for label, value in (
        ("failed", p.failed),
        ("invalid", p.invalid),
        ("unknown", p.unknown),
        ("not sent", p.not_sent),
    ):
        if value:
            parts.append(f"{value:,} {label}")
    if p.resumed:
        parts.append(f"{p.resumed:,} from the journal")
    parts.append(f"{p.ops_pending:,} ops pending")
    parts.append(f"{p.records_per_s:,.0f} records/s")
    return " · ".join(parts)


class Display(Protocol):
    """What the CLI needs from a progress display."""

    def __enter__(self) -> Display: ...

    def __exit__(self, *exc: object) -> None: ...

    def update(self, progress: Progress) -> None: ...


class PlainDisplay:
    """A line every couple of seconds, and one at the end."""

    def __init__(self, stream: IO[str], label: str, total: int | None = None) -> None:
        self._stream = stream
        self._label = label
        self._total = total
        self._last = 0.0

    def __enter__(self) -> PlainDisplay:
        self._last = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, progress: Progress) -> None:
        now = time.monotonic()
        if progress.done or now - self._last >= _PLAIN_EVERY_S:
            self._last = now
            line = f"{self._label}: {describe(progress, self._total)}"
            print(line, file=self._stream, flush=True)


class JSONLinesDisplay:
    """One JSON object per snapshot, for machines: ``{"event": "progress",
    "label": ..., "total": N or null, <every Progress field>}``."""

    def __init__(self, stream: IO[str], label: str, total: int | None = None) -> None:
        self._stream = stream
        self._label = label
        self._total = total

    def __enter__(self) -> JSONLinesDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, progress: Progress) -> None:
        data: dict[str, Any] = {"event": "progress", "label": self._label, "total": self._total}
        data.update(attrs.asdict(progress))
        data["elapsed"] = round(progress.elapsed, 3)
        data["records_per_s"] = round(progress.records_per_s, 1)
        self._stream.write(json.dumps(data) + "\n")
        self._stream.flush()


class QuietDisplay:
    """No progress output at all."""

    def __enter__(self) -> QuietDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, progress: Progress) -> None:
        return None


class RichDisplay:
    """A live bar: records done of ``total`` (when known), rate, then applied,
    failed, invalid and unknown apart, and operations pending."""

    def __init__(self, stream: IO[str], label: str, total: int | None) -> None:
        if not HAVE_RICH:
            raise ImportError("the progress bar needs rich: pip install 'wesog-async[cli]'")
        self._total = total
        self._bar = Bar(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=12),
            TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[outcomes]}"),
            TextColumn("[dim]{task.fields[pending]}"),
            TimeElapsedColumn(),
            console=Console(file=stream),
            transient=False,
            refresh_per_second=10,
        )
        self._task = self._bar.add_task(
            label, total=total, count="", rate="", outcomes="", pending="", start=True
        )

    def __enter__(self) -> RichDisplay:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def update(self, p: Progress) -> None:
        done = p.applied + p.failed + p.invalid + p.unknown + p.not_sent
        count = f"{done:,}/{self._total:,}" if self._total is not None else f"{done:,}"
        outcomes = [f"[green]✔ {p.applied:,}[/]"]
        for style, text, value in (
            ("red", "✘ {:,} failed", p.failed),
            ("yellow", "{:,} invalid", p.invalid),
            ("magenta", "{:,} unknown", p.unknown),
            ("dim", "{:,} not sent", p.not_sent),
        ):
            if value:
                outcomes.append(f"[{style}]{text.format(value)}[/]")
        fields: dict[str, Any] = {
            "count": count,
            "rate": f"{p.records_per_s:,.0f}/s",
            "outcomes": " ".join(outcomes),
            "pending": f"{p.ops_pending:,} ops",
        }
        self._bar.update(self._task, completed=done, **fields)


def make_display(
    label: str,
    *,
    total: int | None = None,
    stream: IO[str] | None = None,
    quiet: bool = False,
    mode: str = "auto",
) -> Display:
    """The display ``mode`` asks for (one of :data:`PROGRESS_MODES`); ``auto`` is
    a rich bar on a terminal (when rich is installed) and plain lines otherwise.
    ``quiet`` turns the display off unless ``mode`` is ``jsonl``."""
    if mode not in PROGRESS_MODES:
        raise ValueError(f"progress mode must be one of {', '.join(PROGRESS_MODES)}, not {mode!r}")
    out = stream if stream is not None else sys.stderr
    if mode == "none" or (quiet and mode != "jsonl"):
        return QuietDisplay()
    if mode == "jsonl":
        return JSONLinesDisplay(out, label, total)
    if mode == "bar" or (mode == "auto" and out.isatty()):
        try:
            return RichDisplay(out, label, total)
        except ImportError:
            if mode == "bar":
                raise
    return PlainDisplay(out, label, total)


def add_progress_options(parser: argparse.ArgumentParser) -> None:
    """``--progress`` and ``--quiet``."""
    add_quiet(parser)
    parser.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        default="auto",
        help="progress on stderr: auto (a bar on a terminal, plain lines otherwise), bar, "
        "plain, jsonl (one JSON object per update, for headless jobs) or none",
    )


def display_for(args: argparse.Namespace, label: str, total: int | None = None) -> Display:
    """The display the command line asks for."""
    try:
        return make_display(label, total=total, quiet=args.quiet, mode=args.progress)
    except ImportError as exc:
        raise UsageError(f"--progress bar: {exc}") from None


__all__ = [
    "PROGRESS_MODES",
    "add_progress_options",
    "display_for",
    "Display",
    "JSONLinesDisplay",
    "PlainDisplay",
    "QuietDisplay",
    "RichDisplay",
    "describe",
    "make_display",
]
