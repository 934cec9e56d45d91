"""``wesog-async job create / status`` and ``wesog-async worker``, in-process
against a threaded emulator and a real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

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


def test_help_lists_the_scale_out_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert "worker" in text and "job" in text
