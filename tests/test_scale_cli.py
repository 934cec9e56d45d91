"""``wesog-async job create / status`` and ``wesog-async worker``, in-process
against a threaded emulator and a real PostgreSQL."""

from __future__ import annotations

import json
import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._services import unique_name
from tests.test_cli_client import ThreadedEmulator
from wesog_async import cli
from wesog_async.emulator import EmulatorConfig

KEY = "scale-cli-key-1234567890"


@pytest.fixture
def emulator() -> Iterator[ThreadedEmulator]:
    emu = ThreadedEmulator(EmulatorConfig(api_keys=(KEY,), item_delay_ms=0))
    try:
        yield emu
    finally:
        emu.stop()


def write_input(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "images.jsonl"
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"c{i}", "src": f"https://cdn.example.com/{i}.jpg"}) + "\n")
    return path


def test_create_run_two_workers_and_watch_status(
    emulator: ThreadedEmulator,
    postgres_dsn: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_input(tmp_path, 900)
    job = unique_name("cli")
    monkeypatch.setenv("WESOG_JOURNAL", postgres_dsn)
    args = ["job", "create", job, str(path), "--bytes-per-shard", "9000", "--batch-size", "50"]
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    created = json.loads(captured.out)
    assert created["created"] and created["shards"] >= 4
    assert "start workers with" in captured.err
    assert cli.main(args) == 0  # the same job again: unchanged
    assert json.loads(capsys.readouterr().out)["created"] is False

    assert cli.main(["job", "status", job]) == 0
    text = capsys.readouterr().err
    assert f"0 done, 0 leased, {created['shards']} pending" in text

    conn = ["--api-key", KEY, "--base-url", emulator.server.url, "-q"]
    for worker in ("w1", "w2"):
        assert cli.main(["worker", job, "--lease", "5", "--worker-id", worker, *conn]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["worker"] == worker
    assert emulator.counters.items_applied == 900

    assert cli.main(["job", "status", job, "--json", "--watch", "0.1"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["complete"] and status["shards"]["done"] == created["shards"]
    assert status["records"]["applied"] == status["records"]["total"] == 900
    assert status["stuck"] == [] and status["records_per_s"] > 0
    assert cli.main(["job", "status", job]) == 0
    assert "900 applied" in capsys.readouterr().err


def test_usage_errors(
    postgres_dsn: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WESOG_JOURNAL", raising=False)
    path = write_input(tmp_path, 3)
    assert cli.main(["job", "create", "j", str(path)]) == 2
    assert "--journal postgresql://" in capsys.readouterr().err
    assert cli.main(["job", "status", "j", "--journal", str(tmp_path / "x.journal")]) == 2
    assert "expected a postgresql:// URL" in capsys.readouterr().err
    assert cli.main(["job", "status", "no-such-job", "--journal", postgres_dsn]) == 2
    assert "no job 'no-such-job'" in capsys.readouterr().err
    missing = str(tmp_path / "missing.jsonl")
    assert cli.main(["job", "create", "j", missing, "--journal", postgres_dsn]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["worker", "no-such-job", "--journal", postgres_dsn, "--api-key", KEY]) == 2
    assert "no job 'no-such-job'" in capsys.readouterr().err
    assert cli.main(["worker", "j", "--journal", postgres_dsn, "--lease", "0"]) == 2
    assert "--lease" in capsys.readouterr().err


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def status_json(job: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert cli.main(["job", "status", job, "--json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def test_worker_exit_codes_follow_the_table_and_show_the_error_with_quiet(
    emulator: ThreadedEmulator,
    postgres_dsn: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WESOG_JOURNAL", postgres_dsn)
    path = write_input(tmp_path, 40)
    good = ["--api-key", KEY, "--base-url", emulator.server.url]

    def new_job(tag: str) -> tuple[str, list[str]]:
        # One job per case: a shard's journal is bound to the key and URL of
        # its first run, even one that failed.
        job = unique_name(tag)
        assert cli.main(["job", "create", job, str(path), "-q"]) == 0
        capsys.readouterr()
        return job, ["worker", job, "--lease", "5", "--no-wait", "-q"]

    # A rejected key: 2, and the error is printed although -q.
    job, worker = new_job("cli-exit-key")
    assert cli.main([*worker, "--api-key", "wrong", "--base-url", emulator.server.url]) == 2
    captured = capsys.readouterr()
    assert "wesog-async worker:" in captured.err and "AuthenticationError" in captured.err
    assert "wrong" not in captured.err and captured.out == ""
    # The shard was given back, with its error, for the next worker.
    status = status_json(job, capsys)
    assert status["shards"]["pending"] == 1 and status["shards"]["leased"] == 0

    # The API unreachable: 3, printed with -q too.
    job, worker = new_job("cli-exit-conn")
    nowhere = ["--api-key", KEY, "--base-url", f"http://127.0.0.1:{closed_port()}"]
    assert cli.main([*worker, *nowhere, "--retries", "0"]) == 3
    captured = capsys.readouterr()
    assert "wesog-async worker:" in captured.err and "ConnectError" in captured.err
    assert emulator.counters.items_applied == 0

    # The shard's input is not at its path on this machine: 2 (unreadable
    # input), and the shard is given back.
    job, worker = new_job("cli-exit-input")
    moved = path.with_name("moved.jsonl")
    path.rename(moved)
    assert cli.main([*worker, *good]) == 2
    assert "No such file" in capsys.readouterr().err
    assert status_json(job, capsys)["shards"]["pending"] == 1
    # Back in place: the job completes and the worker exits 0.
    moved.rename(path)
    assert cli.main([*worker, *good]) == 0
    assert json.loads(capsys.readouterr().out)["records"]["applied"] == 40
    assert status_json(job, capsys)["complete"]


def test_an_unreachable_or_refusing_job_database(
    emulator: ThreadedEmulator,
    postgres_dsn: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WESOG_JOURNAL", raising=False)
    path = write_input(tmp_path, 3)
    down = f"postgresql://wesog@127.0.0.1:{closed_port()}/postgres"
    api = ["--api-key", KEY, "--base-url", emulator.server.url]
    # Unreachable: a connection failure (3), for job and worker alike, with -q too.
    assert cli.main(["job", "create", "j", str(path), "--journal", down, "-q"]) == 3
    assert "cannot reach the job database" in capsys.readouterr().err
    assert cli.main(["job", "status", "j", "--journal", down]) == 3
    assert "cannot reach the job database" in capsys.readouterr().err
    assert cli.main(["worker", "j", "--journal", down, "-q", *api]) == 3
    assert "cannot reach the job database" in capsys.readouterr().err
    # Reached but refused (no such role): a configuration error (2), not a traceback.
    parts = urllib.parse.urlsplit(postgres_dsn)
    refused = parts._replace(netloc=f"no-such-role@{parts.hostname}:{parts.port}").geturl()
    assert cli.main(["job", "status", "j", "--journal", refused]) == 2
    err = capsys.readouterr().err
    assert "refused the connection" in err and "no-such-role" in err
    assert cli.main(["worker", "j", "--journal", refused, "-q", *api]) == 2
    assert "refused the connection" in capsys.readouterr().err


def test_help_lists_the_scale_out_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert "worker" in text and "job" in text


def test_job_create_warns_when_a_non_create_mode_is_not_strict(
    postgres_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_input(tmp_path, 3)
    base = ["job", "create", "--journal", postgres_dsn, "--mode", "replace"]
    assert cli.main([*base[:2], unique_name("warn"), *base[2:], str(path)]) == 0
    assert "--mode replace without --strict" in capsys.readouterr().err
    assert cli.main([*base[:2], unique_name("warn"), *base[2:], str(path), "--strict"]) == 0
    assert "without --strict" not in capsys.readouterr().err
