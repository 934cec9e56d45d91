"""FAULTS F35: four `wesog-async worker` processes, one SIGKILLed mid-shard.

The emulator runs in its own process (a small per-item delay), PostgreSQL is
real. The job must complete with every record in exactly one bucket, and the
emulator's duplicate applies must be exactly records the job reports as
resent: the ids the emulator applied twice are a subset of the ids in the
batches the journal marks resent (equality is not attainable by design: a
resent record whose first copy never reached the server is no duplicate), and
the server applied each record once plus exactly those duplicates.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests._services import free_port
from wesog_async.cli import main as cli_main

RECORDS = int(os.environ.get("WESOG_KILL_TEST_RECORDS", "200000"))
SHARDS = 20
WORKERS = 4
KEY = "kill-test-key-0123456789"
LEASE_S = 1.5
TIMEOUT_S = 120.0

pytestmark = pytest.mark.slow


def _spawn(args: list[str], **kw: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "wesog_async", *args], env=env, **kw)


@pytest.fixture
def emulator_url() -> Iterator[str]:
    port = free_port()
    proc = _spawn(
        ["emulator", "--port", str(port), "--api-key", KEY, "--item-delay-ms", "0.005"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                _stats(url)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the emulator did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/_emulator/stats", timeout=5) as resp:
        data: dict[str, Any] = json.loads(resp.read())
        return data


def _status(dsn: str, job: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert cli_main(["job", "status", job, "--journal", dsn, "--json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def test_a_worker_killed_mid_shard_loses_and_doubles_nothing(
    emulator_url: str, postgres_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "images.jsonl"
    with path.open("w") as f:
        for i in range(RECORDS):
            f.write(f'{{"id":"k{i}","src":"https://cdn.example.com/{i}.jpg","title":"t{i}"}}\n')
    job = f"kill-{os.getpid()}-{time.monotonic_ns()}"
    code = cli_main(
        ["job", "create", job, str(path), "--journal", postgres_dsn, "-q",
         "--lines-per-shard", str(RECORDS // SHARDS), "--batch-size", "500"]
    )  # fmt: skip
    assert code == 0
    capsys.readouterr()
    env_args = ["--api-key", KEY, "--base-url", emulator_url, "-q"]
    t0 = time.monotonic()
    workers = [
        _spawn(
            [
                "worker",
                job,
                "--journal",
                postgres_dsn,
                "--lease",
                str(LEASE_S),
                "--worker-id",
                f"w{n}",
                *env_args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(WORKERS)
    ]
    try:
        # Kill w0 once it is well into a shard (some records read, not done).
        victim = workers[0]
        deadline = time.monotonic() + TIMEOUT_S
        killed_shard = None
        while killed_shard is None and time.monotonic() < deadline:
            assert all(w.poll() is None for w in workers), "a worker ended before the kill"
            pool_rows = _leased_by(postgres_dsn, job, "w0")
            if pool_rows:
                killed_shard = pool_rows[0]
                victim.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        assert killed_shard is not None, "w0 never held a shard mid-way"
        victim.communicate(timeout=10)  # reaped, its pipes closed
        outputs = []
        for w in workers[1:]:
            out, err = w.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert w.returncode == 0, err.decode()
            outputs.append(json.loads(out))
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
            w.communicate()
    elapsed = time.monotonic() - t0
    status = _status(postgres_dsn, job, capsys)
    records = status["records"]
    stats = _stats(emulator_url)
    print(
        f"\nF35: {RECORDS} records, {WORKERS} workers, w0 killed in shard {killed_shard}; "
        f"{elapsed:.1f} s; resent {records['resent']}, duplicate applies "
        f"{stats['duplicate_applies']}; takeovers {sum(o['takeovers'] for o in outputs)}"
    )
    assert status["complete"] and status["shards"] == {"done": SHARDS, "leased": 0, "pending": 0}
    # Every record in exactly one bucket, all of them applied.
    assert records["total"] == RECORDS
    assert records["applied"] == RECORDS
    assert records["failed"] == records["invalid"] == records["unknown"] == 0
    assert records["not_sent"] == 0
    # The killed worker's shard was taken over by one of the others.
    assert sum(o["takeovers"] for o in outputs) >= 1
    # The server applied each record once, plus exactly its duplicate applies,
    # and those are only records the job says it resent.
    assert stats["items_applied"] == RECORDS + stats["duplicate_applies"]
    assert stats["max_applies_per_image"] <= 2
    assert stats["duplicate_applies"] <= records["resent"]
    assert stats["items_failed"] == 0
    # Not only as many: the very records applied twice are among those the
    # journal marks resent (their batches' rows), one duplicate apply each.
    doubled = set(stats["duplicate_image_ids"])
    assert len(doubled) == stats["duplicate_applies"]
    resent_ids = _resent_image_ids(postgres_dsn, job)
    assert len(resent_ids) == records["resent"]
    assert doubled <= resent_ids, sorted(doubled - resent_ids)[:10]


def _resent_image_ids(dsn: str, job: str) -> set[str]:
    """The image ids of the records in rows the job's journals mark resent.

    A done row keeps its input positions, not its ids; the input is line
    ``k`` -> id ``k{k}``, so a shard's position ``p`` is id ``k{start + p}``.
    """

    async def query() -> set[str]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT s.start AS base, b.start, b.stop, b.positions, b.invalid "
                "FROM wesog_journal_batches AS b JOIN wesog_shards AS s "
                "ON s.job = $1 AND b.journal = s.job || '/' || s.id::text "
                "WHERE b.resent",
                job,
            )
        finally:
            await conn.close()
        ids: set[str] = set()
        for r in rows:
            span = json.loads(r["positions"]) if r["positions"] else range(r["start"], r["stop"])
            invalid = {e[0] for e in json.loads(r["invalid"] or "[]")}
            ids.update(f"k{r['base'] + p}" for p in span if p not in invalid)
        return ids

    return asyncio.run(query())


def _leased_by(dsn: str, job: str, owner: str) -> list[int]:
    """Shards ``owner`` holds with some records read: batches in the shard's
    journal (written before each request leaves). Not ``records_read``: a
    lease renewal writes it, and on a fast host a shard can be done before
    its first renewal."""

    async def query() -> list[int]:
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch(
                "SELECT s.id FROM wesog_shards AS s WHERE s.job = $1 AND s.owner = $2 "
                "AND s.state = 'leased' AND EXISTS (SELECT 1 FROM wesog_journal_batches "
                "AS b WHERE b.journal = s.job || '/' || s.id::text) ORDER BY s.id",
                job,
                owner,
            )
        finally:
            await conn.close()
        return [r["id"] for r in rows]

    return asyncio.run(query())
