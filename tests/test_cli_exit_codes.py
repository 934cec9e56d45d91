"""One exit-code table for every command: errors to statuses, and each status
met for real against the emulator (faults injected), a closed port or a refused
base URL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli_client import KEY, ThreadedEmulator, conn, good, jsonl, lines

from wesog_async import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConflictError,
    ConnectError,
    InvalidInputError,
    NotFoundError,
    OperationFailedError,
    OperationNotFoundError,
    OperationTimeoutError,
    OutcomeUnknownError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
    TransportError,
    WesogError,
)
from wesog_async.cli import main
from wesog_async.cli._common import UsageError, exit_code_for
from wesog_async.emulator import EmulatorConfig


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WESOG_API_KEY", raising=False)
    monkeypatch.delenv("WESOG_BASE_URL", raising=False)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UsageError("x"), 2),
        (AuthenticationError("x", status=401), 2),
        (InvalidInputError("x", field="src"), 2),
        (ConnectError("x"), 3),
        (TransportError("x"), 3),
        (OutcomeUnknownError("x"), 3),
        (BadRequestError("x", status=422), 4),
        (ConflictError("x", status=409), 4),
        (RateLimitError("x", status=429), 4),
        (APIStatusError("x", status=418), 4),
        (NotFoundError("x", status=404), 5),
        (OperationNotFoundError("x", op_id=3), 5),
        (ServerError("x", status=500), 6),
        (ResponseValidationError("x"), 6),
        (OperationFailedError("x", op_id=1, operation=None, failed=()), 1),
        (OperationTimeoutError("x", op_id=1, last_status=None), 1),
        (ClientClosedError("x"), 1),
        (WesogError("x"), 1),
    ],
)
def test_exit_code_for(error: BaseException, code: int) -> None:
    assert exit_code_for(error) == code


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_connection_failure_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nowhere = ["--api-key", KEY, "--base-url", closed_port(), "--retries", "0"]
    assert main(["get", "a", *nowhere]) == 3
    assert "wesog-async get:" in capsys.readouterr().err
    path = jsonl(tmp_path / "in.jsonl", good(5))
    assert main(["upload", path, "--quiet", *nowhere]) == 3
    captured = capsys.readouterr()
    assert "Stopped:" in captured.err  # an error: shown with --quiet
    summary = lines(captured.out)[-1]["summary"]
    assert summary["aborted"] is True and summary["error"].startswith("ConnectError")
    assert main(["ops", "list", *nowhere]) == 3
    assert main(["get", "a", *nowhere[:-2], "--retries", "-1"]) == 2


@pytest.fixture
def faulty() -> Iterator[ThreadedEmulator]:
    faults = "GET /imgs/{image_id} script 400, 500, pass; GET /ops 500"
    emulator = ThreadedEmulator(EmulatorConfig(api_keys=(KEY,), faults=faults))
    yield emulator
    emulator.stop()


def test_api_errors_exit_4_5_and_6(
    faulty: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["get", "a", *conn(faulty)]) == 4
    assert "400" in capsys.readouterr().err
    # Reads retry a 500: one attempt only, so that the 500 is what is left.
    assert main(["get", "a", "--retries", "0", *conn(faulty)]) == 6
    assert "500" in capsys.readouterr().err
    assert main(["get", "missing", *conn(faulty)]) == 5
    assert main(["ops", "get", "12345", *conn(faulty)]) == 5
    assert main(["ops", "list", "--retries", "0", *conn(faulty)]) == 6


def test_partial_failure_exits_1_and_success_0(
    faulty: ThreadedEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [*good(4), {"id": "x", "src": "https://down.invalid/x.jpg"}]
    assert main(["upload", jsonl(tmp_path / "in.jsonl", records), "-q", *conn(faulty)]) == 1
    assert main(["upload", jsonl(tmp_path / "ok.jsonl", good(4)), "-q", *conn(faulty)]) == 0
    assert main(["delete", "c0", "nope", "--strict", "-q", *conn(faulty)]) == 1
    capsys.readouterr()


def test_auth_and_usage_errors_exit_2(
    faulty: ThreadedEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", "--api-key", "wrong", "--base-url", faulty.server.url]) == 2
    err = capsys.readouterr().err
    assert "authentication failed (401)" in err and "wrong" not in err
    assert main(["get", "a", "--fields", "nope", *conn(faulty)]) == 2
    assert main(["demo", "--batch-size", "0"]) == 2


def test_plain_http_refusal_names_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = ["--api-key", KEY, "--base-url", "http://images.example.com"]
    assert main(["get", "a", *remote]) == 2
    err = capsys.readouterr().err
    assert "refusing plain http://" in err and "--allow-insecure-http" in err
    assert "allow_insecure_http=True" not in err
    path = jsonl(tmp_path / "in.jsonl", good(2))
    assert main(["upload", path, *remote]) == 2
    assert "--allow-insecure-http" in capsys.readouterr().err
    # The flag is passed on (loopback http needs none): this one reaches the server.
    emulator = ThreadedEmulator()
    try:
        args = ["get", "missing", "--allow-insecure-http", *conn(emulator)]
        assert main(args) == 5
    finally:
        emulator.stop()


def test_no_key_with_a_base_url_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = jsonl(tmp_path / "in.jsonl", good(2))
    monkeypatch.setenv("WESOG_BASE_URL", "https://api.example.com")
    assert main(["upload", path]) == 2
    err = capsys.readouterr().err
    assert "no API key for https://api.example.com" in err and "--api-key" in err


def test_no_key_fallback_refuses_a_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = jsonl(tmp_path / "in.jsonl", good(2))
    journal = str(tmp_path / "j.db")
    assert main(["upload", path, "--journal", journal]) == 2
    assert "refusing --journal" in capsys.readouterr().err
    assert not Path(journal).exists()
    assert main(["upload", path, "--journal", journal, "--emulator", "-q"]) == 0


def test_exit_codes_as_a_subprocess(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("WESOG_API_KEY", None)
    env.pop("WESOG_BASE_URL", None)

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "wesog_async", *argv],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    nowhere = run("get", "a", "--api-key", KEY, "--base-url", closed_port(), "--retries", "0")
    assert nowhere.returncode == 3 and KEY not in nowhere.stderr
    path = jsonl(tmp_path / "in.jsonl", [*good(3), {"id": "x"}])
    fallback = run("upload", path, "--quiet")
    assert fallback.returncode == 1  # one invalid record
    assert "embedded emulator" in fallback.stderr
    assert lines(fallback.stdout)[-1]["summary"]["applied"] == 3
    assert run("upload", path, "--mode", "nope").returncode == 2
