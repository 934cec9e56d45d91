"""Bulk ingestion against a scripted server answering hypothesis-generated
statuses, consistent and inconsistent: no report ever counts a record applied
that the server did not apply, and every record lands in exactly one bucket,
whether the run ends, crashes or is resumed from a journal snapshot."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import FAST_POLL
from tests.scripted_bulk import ACTIONS, STATUSES, ScriptedBulkServer, Step, check_truth
from wesog_async import RetryPolicy, WesogClient, WesogError, ingest, ingest_all
from wesog_async.bulk import Outcome

KEY = "scripted-key-0123"
SRC = "https://img.example.com/{}.jpg"
RETRY = RetryPolicy(attempts=2, budget=2.0, backoff_initial=0.001, backoff_max=0.002)

steps = st.lists(
    st.builds(
        Step,
        action=st.sampled_from(ACTIONS),
        fail=st.frozensets(st.integers(0, 9), max_size=3),
        status=st.sampled_from(STATUSES),
    ),
    max_size=6,
)


def records(n: int) -> tuple[list[str], list[dict[str, Any]]]:
    ids = [f"r{i:03d}" for i in range(n)]
    return ids, [{"id": i, "src": SRC.format(i)} for i in ids]


def client_for(server: ScriptedBulkServer) -> WesogClient:
    return WesogClient(api_key=KEY, base_url=server.url, poll=FAST_POLL, retry=RETRY)


async def one_run(plan: list[Step], n: int, batch_size: int, strict: bool) -> None:
    ids, recs = records(n)
    async with ScriptedBulkServer(plan) as server, client_for(server) as client:
        outcomes: list[Outcome] = []
        stream = ingest(client, recs, batch_size=batch_size, strict=strict, max_in_flight=2)
        async with stream:
            try:
                async for outcome in stream:
                    outcomes.append(outcome)
            except WesogError:
                pass
        check_truth(stream.report, ids, server, outcomes)
        resent = [o for o in outcomes if o.resent]
        assert stream.report.resent_batches == tuple(o.batch for o in resent)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=steps, n=st.integers(1, 30), batch_size=st.integers(1, 8), strict=st.booleans())
@example(plan=[Step("accept", frozenset({0, 1}), "truncated")], n=4, batch_size=4, strict=False)
@example(plan=[Step("accept_applied_500")], n=3, batch_size=3, strict=True)
@example(
    plan=[Step("reset_applied"), Step("accept", frozenset({1}))], n=2, batch_size=2, strict=False
)
def test_no_status_makes_a_record_applied_that_the_server_did_not_apply(
    plan: list[Step], n: int, batch_size: int, strict: bool
) -> None:
    asyncio.run(one_run(plan, n, batch_size, strict))


async def crash_and_resume(
    plan: list[Step], n: int, batch_size: int, strict: bool, crash_at: int, tmp: Path
) -> None:
    ids, recs = records(n)
    journal, snapshot = tmp / "j.sqlite", tmp / "snapshot.sqlite"
    snapshot.unlink(missing_ok=True)
    journal.unlink(missing_ok=True)

    def crash(writes: int) -> None:
        # What a kill at this moment leaves on disk: the journal's committed rows.
        if writes == crash_at and journal.exists():
            with sqlite3.connect(journal) as src, sqlite3.connect(snapshot) as dst:
                src.backup(dst)

    async with ScriptedBulkServer(plan, on_write=crash) as server, client_for(server) as client:
        first = await ingest_all(
            client, recs, batch_size=batch_size, strict=strict, journal=journal
        )
        check_truth(first, ids, server)
        finished = not snapshot.exists()
        if finished:  # fewer writes than crash_at: resume the finished run
            journal.rename(snapshot)
        second = await ingest_all(
            client, recs, batch_size=batch_size, strict=strict, journal=snapshot
        )
        check_truth(second, ids, server)
        # A batch whose polls never gave its own finished status (an answer about
        # another op) stays accepted: the resume follows its op again.
        followed_again = any("polled operation" in e.message for e in first.unknown_items)
        if finished and not first.aborted and (strict or not first.unknown) and not followed_again:
            # Nothing left to settle: the resume only reads the journal back.
            assert second.ops == 0 and second.resumed == second.total
            assert (second.applied, second.failed, second.invalid, second.unknown) == (
                first.applied, first.failed, first.invalid, first.unknown,
            )  # fmt: skip
        third = await ingest_all(
            client, recs, batch_size=batch_size, strict=strict, journal=snapshot
        )
        check_truth(third, ids, server)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    plan=steps,
    n=st.integers(1, 24),
    batch_size=st.integers(1, 6),
    strict=st.booleans(),
    crash_at=st.integers(1, 8),
)
@example(plan=[Step("accept", frozenset({0}), "truncated")], n=4, batch_size=2, strict=False,
         crash_at=9)  # fmt: skip
@example(plan=[Step("accept", frozenset({0}), "counts_off")], n=4, batch_size=2, strict=True,
         crash_at=9)  # fmt: skip
def test_a_resume_after_a_crash_at_any_point_reports_the_same_truth(
    tmp_path: Path, plan: list[Step], n: int, batch_size: int, strict: bool, crash_at: int
) -> None:
    asyncio.run(crash_and_resume(plan, n, batch_size, strict, crash_at, tmp_path))
