"""What the CLI prints: --quiet, --progress formats, --log-format json, the
warning for non-strict replace/modify/delete, the resume hint and the demo's
failed-records file."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_cli_client import KEY, ThreadedEmulator, conn, good, jsonl, lines

from wesog_async import IngestReport, Progress, RecordError
from wesog_async.cli import build_parser, main
from wesog_async.cli._logging import JSONFormatter
from wesog_async.cli.progress import JSONLinesDisplay, RichDisplay, describe, make_display
from wesog_async.cli.upload import Upload
from wesog_async.emulator import EmulatorConfig


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WESOG_API_KEY", raising=False)
    monkeypatch.delenv("WESOG_BASE_URL", raising=False)


@pytest.fixture
def emu() -> Iterator[ThreadedEmulator]:
    emulator = ThreadedEmulator()
    yield emulator
    emulator.stop()


def snapshot(**overrides: Any) -> Progress:
    values: dict[str, Any] = {
        "read": 1_234_567, "sent": 1_200_000, "applied": 1_100_000, "failed": 1_234,
        "invalid": 56, "unknown": 7, "not_sent": 0, "resumed": 0, "ops_pending": 12,
        "requests_in_flight": 3, "elapsed": 10.0, "records_per_s": 123_456.7,
    }  # fmt: skip
    return Progress(**{**values, **overrides})


def test_quiet_means_only_errors_on_stderr(
    emu: ThreadedEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [*good(5), {"id": "bad"}]
    path = jsonl(tmp_path / "in.jsonl", records)
    failed = tmp_path / "failed.jsonl"
    args = ["upload", path, "--quiet", "--failed-out", str(failed), *conn(emu)]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert captured.err == ""
    assert lines(captured.out)[-1]["summary"]["invalid"] == 1  # stdout unchanged
    assert main(["upload", path, "--mode", "replace", "--quiet", *conn(emu)]) == 1
    assert capsys.readouterr().err == ""  # no warning either
    assert main(["delete", "c1", "-q", *conn(emu)]) == 0
    assert capsys.readouterr().err == ""
    assert main(["get", "nope", "-q", *conn(emu)]) == 5
    assert "404" in capsys.readouterr().err  # errors still show


def test_non_strict_replace_modify_delete_warn(
    emu: ThreadedEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = jsonl(tmp_path / "in.jsonl", good(3))
    for mode in ("replace", "modify", "delete"):
        assert main(["upload", path, "--mode", mode, *conn(emu)]) == 0
        err = capsys.readouterr().err
        assert f"warning: --mode {mode} without --strict" in err and "counted as applied" in err
    assert main(["upload", path, *conn(emu)]) == 0
    assert main(["upload", path, "--mode", "replace", "--strict", *conn(emu)]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["delete", "c0", *conn(emu)]) == 0
    assert "warning: without --strict" in capsys.readouterr().err
    assert main(["delete", "c1", "--strict", *conn(emu)]) == 0
    assert "warning" not in capsys.readouterr().err


def test_progress_jsonl_on_stderr(
    emu: ThreadedEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = jsonl(tmp_path / "in.jsonl", [*good(40), {"id": "x"}])
    args = ["upload", path, "--progress", "jsonl", "--quiet", "--batch-size", "10", *conn(emu)]
    assert main(args) == 1
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.err.splitlines()]
    assert events and all(e["event"] == "progress" and e["label"] == "upload" for e in events)
    last = events[-1]
    assert last["done"] is True and last["applied"] == 40 and last["invalid"] == 1
    assert last["total"] is None and {"read", "failed", "ops_pending", "elapsed"} <= set(last)
    assert "summary" in lines(captured.out)[-1]


def test_progress_none_and_plain(
    emu: ThreadedEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = jsonl(tmp_path / "in.jsonl", good(5))
    assert main(["upload", path, "--progress", "none", *conn(emu)]) == 0
    err = capsys.readouterr().err
    assert "upload:" not in err and "Done: 5 records" in err
    assert main(["upload", path, "--progress", "plain", *conn(emu)]) == 0
    assert "upload: 5 read · 5 applied" in capsys.readouterr().err


def test_displays_use_separators_and_keep_failed_apart_from_invalid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    p = snapshot()
    assert describe(p, total=2_000_000).startswith(
        "1,234,567 read of 2,000,000 · 1,100,000 applied · 1,234 failed · 56 invalid · 7 unknown"
    )
    terminal = _Terminal()
    with make_display("upload", total=2_000_000, stream=terminal, mode="bar") as display:
        assert isinstance(display, RichDisplay)
        display.update(p)
    text = terminal.getvalue()
    assert "1,101,297/2,000,000" in text
    assert "1,234 failed" in text and "56 invalid" in text and "7 unknown" in text
    stream = io.StringIO()
    with make_display("demo", total=10, stream=stream, mode="jsonl", quiet=True) as display:
        assert isinstance(display, JSONLinesDisplay)
        display.update(p)
    (event,) = lines(stream.getvalue())
    assert event["total"] == 10 and event["failed"] == 1_234 and event["invalid"] == 56
    assert isinstance(make_display("x", stream=terminal, quiet=True).__enter__(), object)
    with pytest.raises(ValueError, match="progress mode"):
        make_display("x", mode="fancy")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_formatter_keeps_extra_fields() -> None:
    record = logging.LogRecord(
        "wesog_async.x", logging.INFO, __file__, 1, "hi %s", ("there",), None
    )
    record.route = "POST /imgs"
    record.attempt = 2
    record.when = object()
    data = json.loads(JSONFormatter().format(record))
    assert data["message"] == "hi there" and data["level"] == "INFO"
    assert data["logger"] == "wesog_async.x" and data["time"].endswith("+00:00")
    assert data["route"] == "POST /imgs" and data["attempt"] == 2
    assert data["when"].startswith("<object")
    assert "args" not in data and "msg" not in data


def test_log_format_json_writes_library_logs_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator = ThreadedEmulator(EmulatorConfig(api_keys=(KEY,), faults="POST /imgs 503 times=1"))
    try:
        path = jsonl(tmp_path / "in.jsonl", good(5))
        args = ["upload", path, "--log-format", "json", "--progress", "none", *conn(emulator)]
        assert main(args) == 0
    finally:
        emulator.stop()
    logs = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line[:1] == "{"]
    assert any("attempt 1 failed" in entry["message"] for entry in logs), logs
    assert all(entry["logger"].startswith("wesog_async") for entry in logs)
    assert KEY not in json.dumps(logs)


def test_verbose_text_logs_and_silence_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    faults = "POST /imgs script 503, pass, 503, pass"
    emulator = ThreadedEmulator(EmulatorConfig(api_keys=(KEY,), faults=faults))
    try:
        path = jsonl(tmp_path / "in.jsonl", good(5))
        assert main(["upload", path, "-q", *conn(emulator)]) == 0
        assert capsys.readouterr().err == ""
        assert main(["upload", path, "-v", "--progress", "none", *conn(emulator)]) == 0
        assert "INFO" in capsys.readouterr().err
    finally:
        emulator.stop()


def parse_upload(*argv: str) -> Upload:
    args = build_parser().parse_args(["upload", *argv])
    return Upload(args, [], lambda position: position + 1, embedded=False)


def test_resume_hint_repeats_every_option_that_matters() -> None:
    upload = parse_upload(
        "in put.jsonl", "--journal", "j.db", "--failed-out", "bad.jsonl", "--urgent",
        "--strict", "--batch-size", "500", "--concurrency", "8", "--max-pending", "32",
        "--mode", "replace", "--format", "jsonl", "--lang", "es", "--retries", "2",
        "--base-url", "https://api.example.com", "--api-key", KEY, "--quiet",
        "--progress", "jsonl",
    )  # fmt: skip
    report = IngestReport(
        total=10, applied=4, unknown=6,
        unknown_items=tuple(RecordError(i, f"i{i}", "pending", op_id=7) for i in range(6)),
    )  # fmt: skip
    hint = upload.resume_hint(report)
    assert "1 operation(s) were still pending on the server (op ids 7)" in hint
    (command,) = [line for line in hint.splitlines() if line.startswith("Resume with: ")]
    assert command == (
        "Resume with: wesog-async upload 'in put.jsonl' --journal j.db --format jsonl "
        "--mode replace --batch-size 500 --concurrency 8 --max-pending 32 --lang es "
        "--failed-out bad.jsonl --base-url https://api.example.com --retries 2 --strict "
        "--urgent (and the same API key)"
    )
    assert KEY not in hint
    plain = parse_upload("in.jsonl", "--journal", "j.db").resume_command()
    assert plain == ["wesog-async", "upload", "in.jsonl", "--journal", "j.db"]
    retry = parse_upload("a", "--journal", "j", "--retry-failed")
    assert "--retry-failed" in retry.resume_command()
    no_journal = parse_upload("in.jsonl").resume_hint(IngestReport())
    assert "Add --journal FILE" in no_journal and "Resume with" not in no_journal


def test_demo_writes_its_failed_records_where_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    named = tmp_path / "named.jsonl"
    assert main(["demo", "--count", "500", "--failed-out", str(named), "-q"]) == 0
    out = capsys.readouterr().out
    assert f"records are in {named}" in out and len(lines(named.read_text())) == 3
    assert main(["demo", "--count", "3", "--progress", "none"]) == 0  # nothing bad: no file
    assert "records are in" not in capsys.readouterr().out


def test_demo_progress_shows_the_total_as_a_subprocess(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "TMPDIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "wesog_async", "demo", "--count", "1500", "--progress", "jsonl"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    last = json.loads(result.stderr.splitlines()[-1])
    assert last["total"] == 1500 and last["done"] and last["failed"] == 3 and last["invalid"] == 2
    assert "Done: 1,500 records" in result.stdout
