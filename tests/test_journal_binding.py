"""A journal is bound to its destination, mode, strictness and input (F32),
and stores per record what the report says (F26): unknown records are never
resumed as applied; an in-batch duplicate is an input conflict, not a retry."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import API_KEY, OTHER_KEY, make_client
from tests.scripted_bulk import ScriptedBulkServer, Step, check_truth
from wesog_async import JournalMismatchError, WesogClient, WesogError, ingest_all
from wesog_async.emulator import EmulatorConfig, EmulatorServer

SRC = "https://img.example.com/{}.jpg"


@pytest.fixture
def wesog_emulator_config() -> EmulatorConfig:
    return EmulatorConfig(api_keys=(API_KEY, OTHER_KEY), item_delay_ms=0)


def images(n: int, **changed: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"id": f"img-{i:04d}", "src": SRC.format(i), **changed.get(str(i), {})}


def posts(server: EmulatorServer) -> int:
    return server.state.counters.requests["POST /imgs"]


async def test_another_server_tenant_mode_or_strictness_is_refused_before_sending(
    wesog_emulator: EmulatorServer, client: WesogClient, tmp_path: Path
) -> None:
    path = tmp_path / "j.sqlite"
    await ingest_all(client, images(20), batch_size=10, journal=path)
    sent = posts(wesog_emulator)
    async with EmulatorServer(EmulatorConfig(api_keys=(API_KEY,))) as other:
        async with make_client(other) as elsewhere:
            with pytest.raises(JournalMismatchError, match="base_url") as caught:
                await ingest_all(elsewhere, images(20), batch_size=10, journal=path)
        assert other.state.counters.requests["POST /imgs"] == 0
    assert caught.value.field == "base_url" and "use a new journal file" in str(caught.value)
    # A WesogError, yet raised by ingest_all rather than kept on the report.
    assert isinstance(caught.value, WesogError) and isinstance(caught.value, ValueError)
    async with make_client(wesog_emulator, key=OTHER_KEY) as tenant:
        with pytest.raises(JournalMismatchError, match="another API key") as caught:
            await ingest_all(tenant, images(20), batch_size=10, journal=path)
    assert caught.value.field == "tenant"
    assert OTHER_KEY not in str(caught.value) and API_KEY not in str(caught.value)
    assert API_KEY not in caught.value.journal_value
    with pytest.raises(JournalMismatchError, match="strict") as caught:
        await ingest_all(client, images(20), batch_size=10, strict=True, journal=path)
    assert (caught.value.journal_value, caught.value.run_value) == ("false", "true")
    assert posts(wesog_emulator) == sent
    with sqlite3.connect(path) as db:
        stored = " ".join(v for (v,) in db.execute("SELECT value FROM meta"))
    assert API_KEY not in stored and "sha256:" in stored


async def test_an_edited_input_is_refused_at_the_batch_that_differs(
    wesog_emulator: EmulatorServer, client: WesogClient, tmp_path: Path
) -> None:
    path = tmp_path / "j.sqlite"
    await ingest_all(client, images(30), batch_size=10, journal=path)
    sent = posts(wesog_emulator)
    edited = images(30, **{"15": {"title": "edited"}})
    with pytest.raises(JournalMismatchError, match="positions 10 to 19") as caught:
        await ingest_all(client, edited, batch_size=10, journal=path)
    assert caught.value.field == "input"
    with pytest.raises(JournalMismatchError, match="the input has 25 records"):
        await ingest_all(client, images(25), batch_size=10, journal=path)
    assert posts(wesog_emulator) == sent
    again = await ingest_all(client, images(30), batch_size=10, journal=path)
    assert again.resumed == 30 and again.applied == 30


async def test_a_duplicate_in_a_batch_is_a_conflict_and_never_retried(
    wesog_emulator: EmulatorServer, client: WesogClient, tmp_path: Path
) -> None:
    path = tmp_path / "j.sqlite"
    records = list(images(10))
    records[5] = {"id": "img-0002", "src": SRC.format("dup")}  # same id as record 2
    first = await ingest_all(client, records, journal=path)
    assert first.invalid == 1 and first.applied == 9
    conflict = first.invalid_items[0]
    assert conflict.position == 5 and conflict.conflict_with == 2
    assert "input conflict" in conflict.message
    sent = posts(wesog_emulator)
    retried = await ingest_all(client, records, journal=path, retry_failed=True)
    assert posts(wesog_emulator) == sent  # the first copy is never overwritten
    assert retried.invalid == 1 and retried.invalid_items[0].conflict_with == 2
    image = await client.images.get("img-0002")
    assert image.src == SRC.format(2)


@pytest.mark.parametrize("strict", [False, True])
async def test_unknown_records_are_journaled_unknown_and_never_resumed_as_applied(
    tmp_path: Path, strict: bool
) -> None:
    path = tmp_path / "j.sqlite"
    ids = [f"img-{i:04d}" for i in range(8)]
    records = [{"id": i, "src": SRC.format(i)} for i in ids]
    # One batch's status lists 1 of its 2 failures (truncated): 3 records unproven.
    plan = [Step(), Step("accept", frozenset({0, 1}), "truncated")]
    server = ScriptedBulkServer(plan)
    async with server, WesogClient(api_key="k", base_url=server.url) as client:
        first = await ingest_all(client, records, batch_size=4, strict=strict, journal=path)
        check_truth(first, ids, server)
        assert first.applied == 4 and first.failed == 1 and first.unknown == 3
        assert "truncated" in first.unknown_items[0].message
        with sqlite3.connect(path) as db:
            states = db.execute("SELECT state, unknown FROM batches ORDER BY start").fetchall()
        assert states[1][0] == "done" and states[1][1] is not None
        writes = server.writes
        second = await ingest_all(client, records, batch_size=4, strict=strict, journal=path)
        check_truth(second, ids, server)
    if strict:  # never sent twice: still unknown, said so again
        assert server.writes == writes and second.unknown == 3 and second.resent == 0
    else:  # resent, and the report says so
        assert server.writes == writes + 1 and second.unknown == 0 and second.applied == 7
        assert second.resent == 3 and len(second.resent_batches) == 1
    assert second.failed == 1 and second.total == 8
