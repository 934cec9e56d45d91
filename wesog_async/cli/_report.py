"""What ``upload`` and ``demo`` print about an ingestion: the problem records as
JSON Lines and the one-line human summary."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any

from wesog_async import IngestReport, RecordError

LineOf = Callable[[int], int]


def problems(report: IngestReport) -> Iterator[tuple[str, RecordError]]:
    """``(status, error)`` for every record that did not end applied."""
    for status, items in (
        ("failed", report.failed_items),
        ("invalid", report.invalid_items),
        ("unknown", report.unknown_items),
        ("not_sent", report.not_sent_items),
    ):
        for item in items:
            yield status, item


def problem_line(status: str, item: RecordError, line_of: LineOf | None) -> dict[str, Any]:
    """One problem record as written out: status, position, input line, id,
    reason, field, op id and the record itself."""
    line: dict[str, Any] = {"status": status, "position": item.position}
    if line_of is not None:
        line["line"] = line_of(item.position)
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


def write_problems(report: IngestReport, line_of: LineOf | None, path: str | None) -> int:
    """Write the problem records as JSON Lines (to ``path``, or stdout); their count."""
    count = 0
    stream: IO[str]
    with contextlib.ExitStack() as stack:
        if path is not None:
            stream = stack.enter_context(open(path, "w", encoding="utf-8"))
        else:
            stream = sys.stdout
        for status, item in problems(report):
            line = problem_line(status, item, line_of)
            stream.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
            count += 1
        stream.flush()
    return count


def human_summary(report: IngestReport, verb: str) -> str:
    """E.g. ``Done: 1,000 records in 2.0 s: 998 applied, 2 failed (10 operations, …)``."""
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


__all__ = ["human_summary", "problem_line", "problems", "write_problems"]
