"""Progress displays for the command line: rich bars on a terminal, plain lines
otherwise (logs, CI, pipes). Both write to stderr; stdout is kept for data.

A display is fed :class:`~wesog_async._bulk.Progress` snapshots (the
``on_progress`` callback of ``ingest``), at most every 100 ms.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any, Final, Protocol

from wesog_async._bulk import Progress

# A plain line at most this often: enough to follow a long run in a log file.
_PLAIN_EVERY_S: Final = 2.0


def describe(p: Progress) -> str:
    """One line of counters, e.g. for a log."""
    parts = [f"{p.read:,} read", f"{p.applied:,} applied"]
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
    parts.append(f"{p.ops_pending} ops pending")
    parts.append(f"{p.records_per_s:,.0f} records/s")
    return " · ".join(parts)


class Display(Protocol):
    """What the CLI needs from a progress display."""

    def __enter__(self) -> Display: ...

    def __exit__(self, *exc: object) -> None: ...

    def update(self, progress: Progress) -> None: ...


class PlainDisplay:
    """A line every couple of seconds, and one at the end."""

    def __init__(self, stream: IO[str], label: str) -> None:
        self._stream = stream
        self._label = label
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
            print(f"{self._label}: {describe(progress)}", file=self._stream, flush=True)


class QuietDisplay:
    """No progress output at all."""

    def __enter__(self) -> QuietDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, progress: Progress) -> None:
        return None


class RichDisplay:
    """A live bar: records done (of ``total`` when known), rate, good and bad
    counts, operations pending."""

    def __init__(self, stream: IO[str], label: str, total: int | None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as Bar

        self._bar = Bar(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("[green]{task.fields[good]}[/] {task.fields[bad]}"),
            TextColumn("[dim]{task.fields[pending]}"),
            TimeElapsedColumn(),
            console=Console(file=stream),
            transient=False,
            refresh_per_second=10,
        )
        self._task = self._bar.add_task(
            label, total=total, rate="", good="", bad="", pending="", start=True
        )

    def __enter__(self) -> RichDisplay:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def update(self, p: Progress) -> None:
        done = p.applied + p.failed + p.invalid + p.unknown + p.not_sent
        bad = p.failed + p.invalid + p.unknown + p.not_sent
        fields: dict[str, Any] = {
            "rate": f"{p.records_per_s:,.0f} rec/s",
            "good": f"✔ {p.applied:,}",
            "bad": f"[red]✘ {bad:,}[/]" if bad else "",
            "pending": f"{p.ops_pending} ops pending",
        }
        self._bar.update(self._task, completed=done, **fields)


def make_display(
    label: str,
    *,
    total: int | None = None,
    stream: IO[str] | None = None,
    quiet: bool = False,
) -> Display:
    """A rich display on a terminal (when rich is installed), plain lines
    otherwise, nothing when ``quiet``."""
    out = stream if stream is not None else sys.stderr
    if quiet:
        return QuietDisplay()
    if out.isatty():
        try:
            return RichDisplay(out, label, total)
        except ImportError:  # rich is the optional ``cli`` extra
            pass
    return PlainDisplay(out, label)


__all__ = ["Display", "PlainDisplay", "QuietDisplay", "RichDisplay", "describe", "make_display"]
