"""The client subcommands of ``wesog-async``: exit codes and output.

Commands run in-process (``cli.main``), against an emulator running on its own
event loop in a background thread; ``demo`` also runs once as a subprocess.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from wesog_async import Progress, cli
from wesog_async.cli.demo import demo_records
from wesog_async.cli.progress import PlainDisplay, RichDisplay, describe, make_display
from wesog_async.emulator import EmulatorConfig, EmulatorServer

KEY = "cli-canary-key-1234567890"


class ThreadedEmulator:
    """An emulator on its own loop in a daemon thread."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = EmulatorServer(config or EmulatorConfig(api_keys=(KEY,), item_delay_ms=0))
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.server.start())
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self.server.close())
            self.loop.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(10)

    @property
    def counters(self) -> Any:
        return self.server.state.counters

    def call(self, fn: Any) -> None:
        self.loop.call_soon_threadsafe(fn)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def emu() -> Iterator[ThreadedEmulator]:
    emulator = ThreadedEmulator()
    yield emulator
    emulator.stop()


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WESOG_API_KEY", raising=False)
    monkeypatch.delenv("WESOG_BASE_URL", raising=False)


def conn(emu: ThreadedEmulator) -> list[str]:
    return ["--api-key", KEY, "--base-url", emu.server.url]


def jsonl(path: Path, records: list[Any]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def good(n: int, prefix: str = "c") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{i}", "src": f"https://img.example.com/{i}.jpg"} for i in range(n)]


def test_upload_without_a_key_runs_on_an_embedded_emulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = jsonl(tmp_path / "in.jsonl", good(3))
    assert cli.main(["upload", path, "--quiet"]) == 0
    captured = capsys.readouterr()
    # Said even with --quiet: the data does not go where the user may think.
    assert "no API key" in captured.err and "embedded emulator" in captured.err
    assert "WESOG_API_KEY" in captured.err
    summary = lines(captured.out)[-1]["summary"]
    assert summary["applied"] == 3 and summary["emulator"] is True


def test_upload_to_the_embedded_emulator_reports_bad_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records: list[Any] = good(10)
    records[2] = {"id": "c2", "src": "https://x.unreachable.invalid/a.jpg"}
    records[5] = {"id": "c5"}
    path = tmp_path / "in.jsonl"
    text = "".join(json.dumps(r) + "\n" for r in records).replace('{"id": "c7"', '{"id": "c7"\n', 1)
    path.write_text(text + "\n\n{broken\n", encoding="utf-8")
    out = tmp_path / "failed.jsonl"
    code = cli.main(["upload", str(path), "--emulator", "--failed-out", str(out)])
    assert code == 1
    captured = capsys.readouterr()
    (summary,) = lines(captured.out)
    assert summary["summary"]["applied"] == 7 and summary["summary"]["failed"] == 1
    assert summary["summary"]["failed_out"] == str(out)
    assert "embedded emulator" in captured.err and "applied" in captured.err
    problems = {p["line"]: p for p in lines(out.read_text())}
    assert problems[3]["status"] == "failed" and problems[3]["reason"] == "src unreachable"
    assert problems[3]["record"]["src"].endswith(".invalid/a.jpg")
    assert problems[6]["status"] == "invalid" and problems[6]["field"] == "src"
    assert problems[8]["status"] == "invalid"  # the line cut in two: malformed
    assert problems[14]["status"] == "invalid" and "malformed JSON" in problems[14]["reason"]
    assert len(problems) == 5


def test_upload_success_resume_and_no_key_in_output(
    emu: ThreadedEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = jsonl(tmp_path / "in.jsonl", good(250))
    journal = str(tmp_path / "j.sqlite")
    args = ["upload", path, "--journal", journal, "--batch-size", "50", *conn(emu)]
    assert cli.main(args) == 0
    first = capsys.readouterr()
    assert lines(first.out)[0]["summary"]["applied"] == 250
    assert KEY not in first.out + first.err
    assert emu.counters.requests["POST /imgs"] == 5
    assert cli.main(args) == 0
    again = lines(capsys.readouterr().out)[0]["summary"]
    assert again["resumed"] == 250 and again["ops"] == 0
    assert emu.counters.requests["POST /imgs"] == 5


def test_upload_csv_and_delete_by_id_list(
    emu: ThreadedEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_path = tmp_path / "in.csv"
    csv_path.write_text(
        "id,src,keywords,nsfw\n"
        "a,https://x.example/a.jpg,dog|cat,no\n"
        "b,https://x.example/b.jpg,,perhaps\n"
        "c,https://x.example/c.jpg,,\n",
        encoding="utf-8",
    )
    assert cli.main(["upload", str(csv_path), "--quiet", *conn(emu)]) == 1
    out = lines(capsys.readouterr().out)
    assert out[0]["status"] == "invalid" and out[0]["line"] == 3 and out[0]["field"] == "nsfw"
    assert out[-1]["summary"]["applied"] == 2
    ids = tmp_path / "ids.txt"
    ids.write_text("a\nc\n", encoding="utf-8")
    assert cli.main(["upload", str(ids), "--mode", "delete", "--strict", *conn(emu)]) == 0
    assert emu.server.state.images(KEY) == {}


def test_upload_usage_errors(
    emu: ThreadedEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_header = tmp_path / "in.csv"
    bad_header.write_text("id,src,notes\n", encoding="utf-8")
    assert cli.main(["upload", str(bad_header), *conn(emu)]) == 2
    assert "'notes'" in capsys.readouterr().err
    assert cli.main(["upload", str(tmp_path / "missing.jsonl"), *conn(emu)]) == 2
    path = jsonl(tmp_path / "in.jsonl", good(3))
    assert cli.main(["upload", path, "--retry-failed", *conn(emu)]) == 2
    assert cli.main(["upload", path, "--emulator", "--api-key", "x"]) == 2
    assert cli.main(["upload", path, "--batch-size", "0", *conn(emu)]) == 2
    journal = str(tmp_path / "j.sqlite")
    assert cli.main(["upload", path, "--journal", journal, "--quiet", *conn(emu)]) == 0
    capsys.readouterr()
    assert cli.main(["upload", path, "--journal", journal, "--mode", "modify", *conn(emu)]) == 2
    assert "'create' ingestion" in capsys.readouterr().err
    assert cli.main([]) == 2


def test_upload_with_a_wrong_key_is_an_auth_error(
    emu: ThreadedEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = jsonl(tmp_path / "in.jsonl", good(30))
    code = cli.main(["upload", path, "--api-key", "wrong-canary", "--base-url", emu.server.url])
    assert code == 2
    captured = capsys.readouterr()
    assert "Authentication failed" in captured.err
    assert lines(captured.out)[-1]["summary"]["not_sent"] == 30
    assert "wrong-canary" not in captured.out + captured.err


def test_ctrl_c_stops_cleanly_and_the_journal_resumes(
    emu: ThreadedEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emu.call(emu.server.state.pause_processing)
    path = jsonl(tmp_path / "in.jsonl", good(2000))
    journal = str(tmp_path / "j.sqlite")
    args = ["upload", path, "--journal", journal, "--max-pending", "3", *conn(emu)]

    def interrupt() -> None:
        deadline = time.monotonic() + 10
        while emu.counters.ops_created < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)
        signal.raise_signal(signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    assert cli.main(args) == 130
    captured = capsys.readouterr()
    summary = lines(captured.out)[-1]["summary"]
    assert summary["interrupted"] and summary["unknown"] == 300
    assert "3 operation(s) were still pending" in captured.err
    assert "Resume with: wesog-async upload" in captured.err and journal in captured.err

    emu.call(emu.server.state.resume_processing)
    assert cli.main([*args, "--quiet"]) == 0
    assert lines(capsys.readouterr().out)[-1]["summary"]["applied"] == 2000
    counters = emu.counters
    assert len(counters.applies_by_image) == 2000
    assert set(counters.applies_by_image.values()) == {1}


def test_get_search_delete_and_ops(
    emu: ThreadedEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [{**r, "title": f"T{i}", "city": "Oslo"} for i, r in enumerate(good(30, "s"))]
    assert cli.main(["upload", jsonl(tmp_path / "in.jsonl", records), *conn(emu)]) == 0
    capsys.readouterr()

    assert cli.main(["get", "s3", "--fields", "image_id,title", *conn(emu)]) == 0
    assert lines(capsys.readouterr().out) == [{"image_id": "s3", "title": "T3"}]
    assert cli.main(["get", "nope", *conn(emu)]) == 5  # not found
    assert "404" in capsys.readouterr().err

    assert cli.main(["search", "--limit", "5", "--count", "--facets", "city", *conn(emu)]) == 0
    out = lines(capsys.readouterr().out)
    assert len(out) == 6 and out[-1]["count"] == 30 and out[-1]["facets"]["city"]["Oslo"] == 30
    assert cli.main(["search", "--all", "--limit", "7", "--fields", "image_id", *conn(emu)]) == 0
    assert len(lines(capsys.readouterr().out)) == 30
    assert cli.main(["search", "--all", "--count", *conn(emu)]) == 0
    assert lines(capsys.readouterr().out)[-1] == {"count": 30, "facets": {}}
    assert cli.main(["search", "--fields", "nope", *conn(emu)]) == 2

    assert cli.main(["delete", "s1", "s2", *conn(emu)]) == 0
    op = lines(capsys.readouterr().out)[0]
    assert op["num_good"] == 2 and op["method"] == "del"
    assert cli.main(["delete", "s1", "--strict", *conn(emu)]) == 1
    assert "not found" in capsys.readouterr().err

    assert cli.main(["ops", "list", "--limit", "2", *conn(emu)]) == 0
    listed = lines(capsys.readouterr().out)
    assert len(listed) == 2 and listed[0]["op_id"] > listed[1]["op_id"]
    newest = listed[0]["op_id"]
    assert cli.main(["ops", "get", str(newest), *conn(emu)]) == 0
    assert lines(capsys.readouterr().out)[0]["op_id"] == newest
    assert cli.main(["ops", "wait", str(newest), *conn(emu)]) == 1  # it had a failed item
    assert cli.main(["ops", "get", "999", *conn(emu)]) == 5  # not found
    assert cli.main(["ops", "cancel", str(newest), *conn(emu)]) == 4  # 409: already finished
    assert "409" in capsys.readouterr().err
    assert cli.main(["get", "s3", "--api-key", "bad", "--base-url", emu.server.url]) == 2


def test_ops_wait_timeout_and_cancel(
    emu: ThreadedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    emu.call(emu.server.state.pause_processing)
    request = urllib.request.Request(
        emu.server.url + "/imgs?wait=false",
        data=b'[{"id": "w", "src": "https://x.example/w.jpg"}]',
        headers={"API-Key": KEY, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        op_id = json.loads(response.read())["op_id"]
    assert cli.main(["ops", "wait", str(op_id), "--timeout", "0.2", *conn(emu)]) == 1
    assert "not finished after 0.2s" in capsys.readouterr().err
    assert cli.main(["ops", "cancel", str(op_id), *conn(emu)]) == 0
    cancelled = lines(capsys.readouterr().out)[0]
    assert cancelled["is_finished"] and cancelled["num_bad"] == 1


def test_demo_records() -> None:
    records, unreachable, invalid = demo_records(1000)
    items = list(records)
    assert len(items) == 1000 and unreachable == 2 and invalid == 2
    assert sum(".invalid/" in r.get("src", "") for r in items) == 2
    assert sum("src" not in r for r in items) == 1
    assert sum(r["nsfw"] == "maybe" for r in items) == 1
    assert demo_records(3)[2] == 0


def test_demo_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "failed.jsonl"
    assert cli.main(["demo", "--count", "300", "--failed-out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "applied      298" in text.replace(",", "") or "applied  298" in text
    assert len(lines(out.read_text())) == 2
    assert cli.main(["demo", "--count", "-1"]) == 2


def test_demo_subprocess(tmp_path: Path) -> None:
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "TMPDIR": str(tmp),
    }
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-m", "wesog_async", "demo", "--count", "500"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Done: 500 records" in result.stdout
    assert "applied" in result.stdout and "failed" in result.stdout
    assert "wesog-demo-failed.jsonl" in result.stdout
    assert "demo: 500 read" in result.stderr  # plain progress lines off a terminal
    assert not list(cwd.iterdir())  # nothing in the working directory
    (written,) = re.findall(r"records are in (\S+wesog-demo-failed\.jsonl)", result.stdout)
    assert Path(written).parent.parent == tmp  # a fresh temporary directory
    failed = lines(Path(written).read_text())
    assert {f["status"] for f in failed} == {"failed", "invalid"} and len(failed) == 3


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_displays() -> None:
    snapshot = Progress(
        read=120, sent=100, applied=90, failed=5, invalid=3, unknown=1, not_sent=0, resumed=10,
        ops_pending=2, requests_in_flight=1, elapsed=1.0, records_per_s=99.0,
    )  # fmt: skip
    assert describe(snapshot) == (
        "120 read · 90 applied · 5 failed · 3 invalid · 1 unknown · 10 from the journal"
        " · 2 ops pending · 99 records/s"
    )
    terminal = _Terminal()
    with make_display("upload", total=200, stream=terminal) as display:
        assert isinstance(display, RichDisplay)
        display.update(snapshot)
    assert "upload" in terminal.getvalue() and "99/200" in terminal.getvalue()
    plain = io.StringIO()
    with make_display("upload", stream=plain) as display:
        assert isinstance(display, PlainDisplay)
        display.update(snapshot)  # too soon after the start: skipped
        display.update(attrs.evolve(snapshot, done=True))
    assert plain.getvalue().count("\n") == 1 and plain.getvalue().startswith("upload: 120 read")
    with make_display("upload", quiet=True, stream=terminal) as display:
        display.update(snapshot)
