"""A journaled ``upload`` killed with SIGKILL midway, then resumed (F35):
every record ends in exactly one bucket, and the server applied a record
twice only where the resumed run says it resent it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from wesog_async import WesogClient, ingest_all, open_records
from wesog_async.emulator import EmulatorConfig, EmulatorServer

KEY = "kill-test-key-0123"
N = 1000
ROOT = Path(__file__).resolve().parents[1]


async def test_a_killed_upload_resumes_with_every_record_in_one_bucket(tmp_path: Path) -> None:
    source, journal = tmp_path / "in.jsonl", tmp_path / "j.sqlite"
    source.write_text(
        "".join(
            json.dumps({"id": f"img-{i:05d}", "src": f"https://img.example.com/{i}.jpg"}) + "\n"
            for i in range(N)
        )
    )
    # ~0.5 ms per item on one worker: the upload takes about half a second.
    # The fourth write hangs (never applied): it is on the wire when the kill
    # comes, so the journal holds a batch the resumed run must resend.
    config = EmulatorConfig(
        api_keys=(KEY,), item_delay_ms=0.5, workers_per_tenant=1,
        faults="POST /imgs script pass, pass, pass, hang",
    )  # fmt: skip
    async with EmulatorServer(config) as emu:
        command = [
            sys.executable, "-m", "wesog_async", "upload", str(source), "--journal",
            str(journal), "--base-url", emu.url, "--batch-size", "50", "--quiet",
        ]  # fmt: skip
        env = {**os.environ, "WESOG_API_KEY": KEY, "PYTHONPATH": str(ROOT)}
        pipe = asyncio.subprocess.PIPE
        killed = await asyncio.create_subprocess_exec(*command, env=env, stdout=pipe, stderr=pipe)
        counters = emu.state.counters
        while counters.items_applied < N // 4:
            assert killed.returncode is None, "the upload ended before it could be killed"
            await asyncio.sleep(0.005)
        killed.send_signal(signal.SIGKILL)
        await killed.wait()
        assert killed.returncode == -signal.SIGKILL
        assert counters.items_applied < N  # killed midway

        resumed = await asyncio.create_subprocess_exec(*command, env=env, stdout=pipe, stderr=pipe)
        out, err = await resumed.communicate()
        assert resumed.returncode == 0, err.decode()
        summary = json.loads(out.decode().strip().splitlines()[-1])["summary"]
        assert summary["total"] == N and summary["applied"] == N, summary
        assert summary["resumed"] > 0  # what the killed run finished was not sent again
        assert summary["resent"] >= 50  # the hung batch, at least: sent again, and said so
        for bucket in ("failed", "invalid", "unknown", "not_sent"):
            assert summary[bucket] == 0, summary

        # The server holds every record; twice only for what was reported resent.
        assert len(counters.applies_by_image) == N
        assert counters.duplicate_applies <= summary["resent"]

        # The journal now says everything is done: a third run sends nothing.
        with open_records(source) as records:
            async with WesogClient(api_key=KEY, base_url=emu.url) as client:
                report = await ingest_all(client, records, batch_size=50, journal=journal)
        assert report.total == report.resumed == report.applied == N and report.ops == 0
