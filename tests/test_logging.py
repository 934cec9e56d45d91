"""The per-attempt DEBUG line on logger ``wesog_async``: its message, its
``extra=`` fields, and the CLI's ``--log-format json`` carrying them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from aiohttp import web
from test_cli_client import KEY, ThreadedEmulator, conn, good, jsonl

from tests.conftest import make_client
from tests.test_client_http import ServerFactory
from tests.test_request_path import op_body, start
from wesog_async.cli import main
from wesog_async.cli._logging import JSONFormatter
from wesog_async.emulator import EmulatorConfig, EmulatorServer

FIELDS = {
    "wesog_method", "wesog_route", "wesog_status", "wesog_error", "wesog_attempt",
    "wesog_duration_ms", "wesog_op_id", "wesog_request_id", "wesog_server_request_id",
    "wesog_kind",
}  # fmt: skip


def attempt_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if hasattr(r, "wesog_attempt")]


async def test_one_debug_line_per_attempt_with_its_fields(
    caplog: pytest.LogCaptureFixture, aiohttp_server: ServerFactory
) -> None:
    polls = 0

    async def write(_r: web.Request) -> web.Response:
        return web.json_response(
            op_body(7, finished=False), status=202, headers={"Request-Id": "s1"}
        )

    async def poll(_r: web.Request) -> web.Response:
        nonlocal polls
        polls += 1
        if polls == 1:
            return web.json_response({"detail": "busy"}, status=503)
        return web.json_response(op_body(7, finished=True))

    app = web.Application()
    app.router.add_post("/imgs/{image_id}", write)
    app.router.add_get("/ops/{op_id}", poll)
    url = await start(aiohttp_server, app)
    key = "key-CANARY-in-logs"
    caplog.set_level(logging.DEBUG, logger="wesog_async")
    async with make_client(url, key) as client:
        fut = await client.images.create({"id": "a", "src": "https://x/a.jpg"})
        await fut
    records = attempt_records(caplog)
    assert [(r.wesog_route, r.wesog_status, r.wesog_attempt) for r in records] == [  # type: ignore[attr-defined]
        ("/imgs/{image_id}", 202, 1),
        ("/ops/{op_id}", 503, 1),
        ("/ops/{op_id}", 200, 2),
    ]
    post, failed, retried = records
    assert all(r.levelno == logging.DEBUG and r.name == "wesog_async" for r in records)
    assert set(vars(post)) >= FIELDS
    assert post.wesog_method == "POST" and post.wesog_kind == "write"  # type: ignore[attr-defined]
    assert post.wesog_request_id == fut.request_id  # type: ignore[attr-defined]
    assert post.wesog_server_request_id == "s1" and post.wesog_op_id is None  # type: ignore[attr-defined]
    assert failed.wesog_op_id == retried.wesog_op_id == 7  # type: ignore[attr-defined]
    assert failed.wesog_kind == "poll" and failed.wesog_error == "503"  # type: ignore[attr-defined]
    assert failed.wesog_request_id == retried.wesog_request_id != post.wesog_request_id  # type: ignore[attr-defined]
    assert all(isinstance(r.wesog_duration_ms, float) for r in records)  # type: ignore[attr-defined]
    message = post.getMessage()
    assert message.startswith("POST /imgs/{image_id} -> 202 in ") and "attempt 1" in message
    assert fut.request_id is not None and fut.request_id in message
    assert "op 7" in failed.getMessage()
    submitted = [r for r in caplog.records if "started operation" in r.getMessage()]
    assert len(submitted) == 1 and submitted[0].wesog_op_id == 7  # type: ignore[attr-defined]
    assert key not in caplog.text
    assert all(key not in json.dumps(vars(r), default=str) for r in caplog.records)


async def test_a_transport_failure_is_logged_by_its_error_type(
    caplog: pytest.LogCaptureFixture, aiohttp_server: ServerFactory
) -> None:
    async def reset(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    app = web.Application()
    app.router.add_get("/imgs/{image_id}", reset)
    url = await start(aiohttp_server, app)
    from wesog_async import RetryPolicy, TransportError

    caplog.set_level(logging.DEBUG, logger="wesog_async")
    async with make_client(url, retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(TransportError):
            await client.images.get("a")
    (record,) = attempt_records(caplog)
    assert record.wesog_status is None and record.wesog_error == "connection_error"  # type: ignore[attr-defined]
    assert "-> connection_error in" in record.getMessage()


async def test_no_attempt_lines_above_debug(
    caplog: pytest.LogCaptureFixture, wesog_emulator: EmulatorServer
) -> None:
    caplog.set_level(logging.INFO, logger="wesog_async")
    async with make_client(wesog_emulator.url, wesog_emulator.api_key) as client:
        await (await client.images.create({"id": "a", "src": "https://x/a.jpg"}))
    assert attempt_records(caplog) == []


def test_the_json_formatter_writes_the_fields(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("wesog_async")
    with caplog.at_level(logging.DEBUG, logger="wesog_async"):
        logger.debug("x", extra={"wesog_route": "/ops/{op_id}", "wesog_op_id": 3})
    data = json.loads(JSONFormatter().format(caplog.records[-1]))
    assert data["wesog_route"] == "/ops/{op_id}" and data["wesog_op_id"] == 3


def test_cli_json_logs_carry_the_attempt_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator = ThreadedEmulator(EmulatorConfig(api_keys=(KEY,), faults="POST /imgs 503 times=1"))
    try:
        path = jsonl(tmp_path / "in.jsonl", good(5))
        args = [
            "upload",
            path,
            "--log-format",
            "json",
            "-vv",
            "--progress",
            "none",
            *conn(emulator),
        ]
        assert main(args) == 0
    finally:
        emulator.stop()
    logs = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line[:1] == "{"]
    attempts = [entry for entry in logs if "wesog_attempt" in entry]
    posts = [e for e in attempts if e["wesog_route"] == "/imgs" and e["wesog_method"] == "POST"]
    assert [(e["wesog_status"], e["wesog_attempt"]) for e in posts] == [(503, 1), (202, 2)]
    assert posts[0]["wesog_request_id"] == posts[1]["wesog_request_id"]
    assert all(set(e) >= FIELDS and e["level"] == "DEBUG" for e in attempts)
    assert any(e["wesog_route"] == "/ops/{op_id}" and e["wesog_op_id"] for e in attempts)
    assert KEY not in json.dumps(logs)
