"""Emulator fault injection: each fault kind, rules vs scripts, the SPEC and HTTP control."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from wesog_async.cli import main
from wesog_async.emulator import (
    EmulatorConfig,
    EmulatorServer,
    FaultRule,
    FaultSpecError,
    parse_action,
    parse_spec,
)
from wesog_async.emulator.faults import route_matches

SRC = "https://x.example/a.jpg"
ONE = [{"id": "a", "src": SRC}]


@pytest.fixture
def wesog_emulator_config() -> EmulatorConfig:
    return EmulatorConfig(api_keys=("k",))


@pytest.fixture
async def http(wesog_emulator: EmulatorServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(wesog_emulator.url, headers={"API-Key": "k"}) as session:
        yield session


async def wait_applied(srv: EmulatorServer, image_id: str = "a") -> None:
    async with asyncio.timeout(2):
        while image_id not in srv.state.images("k"):
            await asyncio.sleep(0.001)


# -- status codes --------------------------------------------------------------
async def test_script_503_then_pass(
    http: aiohttp.ClientSession, wesog_emulator: EmulatorServer
) -> None:
    wesog_emulator.state.faults.script("POST /imgs", ["503", "503"])
    for _ in range(2):
        async with http.post("/imgs", json=ONE) as resp:
            assert resp.status == 503
            assert "detail" in await resp.json()
    async with http.post("/imgs", json=ONE) as resp:
        assert resp.status == 202
    snap = wesog_emulator.state.counters.snapshot()
    assert snap["faults"] == {"503": 2}
    assert snap["faults_injected"] == 2
    assert snap["ops_created"] == 1  # the faulted calls never reached the handler
    assert snap["requests"]["POST /imgs"] == 3


@pytest.mark.parametrize(
    "retry_after", ["2", "0.25", "date+5", "Wed, 21 Oct 2015 07:28:00 GMT", None]
)
async def test_429_with_and_without_retry_after(
    http: aiohttp.ClientSession, wesog_emulator: EmulatorServer, retry_after: str | None
) -> None:
    wesog_emulator.state.faults.add(
        FaultRule(kind="status", status=429, retry_after=retry_after, times=1)
    )
    async with http.get("/imgs") as resp:
        assert resp.status == 429
        header = resp.headers.get("Retry-After")
    if retry_after is None:
        assert header is None
    elif retry_after == "date+5":
        assert header is not None
        when = email.utils.parsedate_to_datetime(header).timestamp()
        assert 3 < when - time.time() <= 6
    else:
        assert header == retry_after
    async with http.get("/imgs") as resp:
        assert resp.status == 200  # times=1 spent


async def test_413_and_5xx(http: aiohttp.ClientSession, wesog_emulator: EmulatorServer) -> None:
    wesog_emulator.state.faults.script("PUT /imgs", ["413", "502", "504", "500"])
    statuses = []
    for _ in range(5):
        async with http.put("/imgs", json=ONE) as resp:
            statuses.append(resp.status)
    assert statuses == [413, 502, 504, 500, 202]


async def test_probability_is_seeded() -> None:
    async def run(seed: int) -> list[int]:
        cfg = EmulatorConfig(api_keys=("k",), seed=seed, faults="GET /ops 503 p=0.3")
        async with (
            EmulatorServer(cfg) as srv,
            aiohttp.ClientSession(srv.url, headers={"API-Key": "k"}) as http,
        ):
            out = []
            for _ in range(60):
                async with http.get("/ops") as resp:
                    out.append(resp.status)
            assert srv.state.counters.faults["503"] == out.count(503)
            return out

    first, again, other = await run(1), await run(1), await run(2)
    assert first == again
    assert first != other
    assert 5 < first.count(503) < 35


async def test_rule_times_and_route_patterns(
    http: aiohttp.ClientSession, wesog_emulator: EmulatorServer
) -> None:
    faults = wesog_emulator.state.faults
    faults.add(FaultRule(kind="status", status=503, route="GET *", times=2))
    async with http.post("/imgs?wait=true", json=ONE) as resp:
        assert resp.status == 200  # POST is not covered
    got = []
    for path in ("/imgs/a", "/ops", "/imgs"):
        async with http.get(path) as resp:
            got.append(resp.status)
    assert got == [503, 503, 200]
    assert faults.to_json()["rules"][0]["remaining"] == 0


@pytest.mark.parametrize(
    ("pattern", "route", "expected"),
    [
        ("*", "GET /imgs", True),
        ("GET *", "GET /ops/{op_id}", True),
        ("GET *", "POST /imgs", False),
        ("/imgs", "DELETE /imgs", True),
        ("/imgs", "DELETE /imgs/{image_id}", False),
        ("/imgs*", "DELETE /imgs/{image_id}", True),
        ("POST /imgs", "POST /imgs", True),
        ("POST /imgs", "POST /imgs/{image_id}", False),
    ],
)
def test_route_matches(pattern: str, route: str, expected: bool) -> None:
    assert route_matches(pattern, route) is expected


# -- delays and hangs ----------------------------------------------------------
async def test_delay(http: aiohttp.ClientSession, wesog_emulator: EmulatorServer) -> None:
    wesog_emulator.state.faults.script("GET /ops", ["delay(0.05)"])
    started = time.perf_counter()
    async with http.get("/ops") as resp:
        assert resp.status == 200
    assert time.perf_counter() - started >= 0.05


async def test_hang_until_the_client_gives_up(
    http: aiohttp.ClientSession, wesog_emulator: EmulatorServer
) -> None:
    wesog_emulator.state.faults.script("GET /ops/{op_id}", ["hang"])
    with pytest.raises(asyncio.TimeoutError):
        async with http.get("/ops/1", timeout=aiohttp.ClientTimeout(total=0.1)):
            pass
    # A bounded hang answers normally afterwards.
    wesog_emulator.state.faults.script("GET /ops", ["hang(0.05)"])
    started = time.perf_counter()
    async with http.get("/ops") as resp:
        assert resp.status == 200
    assert time.perf_counter() - started >= 0.05


async def test_hang_ends_when_the_server_stops() -> None:
    srv = EmulatorServer(EmulatorConfig(api_keys=("k",), faults="hang"))
    await srv.start()
    async with aiohttp.ClientSession(headers={"API-Key": "k"}) as http:
        pending = asyncio.ensure_future(http.get(srv.url + "/ops"))
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        await srv.close()
        assert time.perf_counter() - started < 1.5
        async with await pending as resp:
            assert resp.status == 503


# -- connection resets ---------------------------------------------------------
async def test_reset_before_the_body_is_read_applies_nothing(
    http: aiohttp.ClientSession, wesog_emulator: EmulatorServer
) -> None:
    wesog_emulator.state.faults.script("POST /imgs", ["reset_before"])
    with pytest.raises(aiohttp.ClientError):
        async with http.post("/imgs?wait=true", json=ONE):
            pass
    assert wesog_emulator.state.counters.ops_created == 0
    assert wesog_emulator.state.counters.faults["reset_before"] == 1


async def test_reset_after_the_request_was_applied(
    http: aiohttp.ClientSession, wesog_emulator: EmulatorServer
) -> None:
    wesog_emulator.state.faults.script("POST /imgs", ["reset_after"])
    with pytest.raises(aiohttp.ClientError):
        async with http.post("/imgs", json=ONE):
            pass
    assert wesog_emulator.state.counters.ops_created == 1
    await wait_applied(wesog_emulator)
    async with http.post("/imgs", json=ONE) as resp:  # the next call is fine
        assert resp.status == 202


# -- broken bodies -------------------------------------------------------------
async def test_malformed_json(http: aiohttp.ClientSession, wesog_emulator: EmulatorServer) -> None:
    wesog_emulator.state.faults.script("POST /imgs", ["malformed_json"])
    async with http.post("/imgs", json=ONE) as resp:
        assert resp.status == 202
        assert resp.content_type == "application/json"
        with pytest.raises(json.JSONDecodeError):
            json.loads(await resp.text())
    await wait_applied(wesog_emulator)  # the submit was applied all the same


async def test_truncated_json(http: aiohttp.ClientSession, wesog_emulator: EmulatorServer) -> None:
    async with http.post("/imgs?wait=true", json=ONE) as resp:
        full = await resp.text()
        op_id = json.loads(full)["op_id"]
    wesog_emulator.state.faults.script("GET /ops/{op_id}", ["truncated_json"])
    async with http.get(f"/ops/{op_id}") as resp:
        assert resp.status == 200
        text = await resp.text()
    assert 0 < len(text) < len(full)
    assert full.startswith(text)
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


async def test_wrong_content_type(
    http: aiohttp.ClientSession, wesog_emulator: EmulatorServer
) -> None:
    wesog_emulator.state.faults.script("GET /ops", ["content_type", "content_type(text/plain)"])
    async with http.get("/ops") as resp:
        assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
        with pytest.raises(aiohttp.ContentTypeError):
            await resp.json()
        assert json.loads(await resp.text()) == []
    async with http.get("/ops") as resp:
        assert resp.content_type == "text/plain"


async def op_after(http: aiohttp.ClientSession, srv: EmulatorServer, action: str) -> Any:
    """Create a finished op, then read it back through ``action``."""
    async with http.post("/imgs?wait=true", json=ONE) as resp:
        op_id = (await resp.json())["op_id"]
    srv.state.faults.script("GET /ops/{op_id}", [action])
    async with http.get(f"/ops/{op_id}") as resp:
        assert resp.status == 200
        return await resp.json()


async def test_wrong_field_types(
    http: aiohttp.ClientSession, wesog_emulator: EmulatorServer
) -> None:
    op = await op_after(http, wesog_emulator, "wrong_types")
    assert op["is_finished"] == "yes"
    assert op["num_good"] == "1"
    op = await op_after(http, wesog_emulator, "wrong_types(op_id, all_good, errors, started_at)")
    assert isinstance(op["op_id"], str)
    assert op["all_good"] == "yes"
    assert op["errors"] == "[]"
    assert isinstance(op["started_at"], list)
    assert op["num_good"] == 1


async def test_extra_fields_unknown_enum_and_missing_op_id(
    http: aiohttp.ClientSession, wesog_emulator: EmulatorServer
) -> None:
    op = await op_after(http, wesog_emulator, "extra_fields")
    assert {"x_emulator_extra", "region"} <= set(op)
    op = await op_after(http, wesog_emulator, "unknown_enum")
    assert op["method"] == "mix"
    wesog_emulator.state.faults.script("POST /imgs", ["no_op_id"])
    async with http.post("/imgs", json=ONE) as resp:
        assert resp.status == 202
        assert "op_id" not in await resp.json()
    # A list body (GET /ops) is rewritten element by element.
    wesog_emulator.state.faults.script("GET /ops", ["unknown_enum"])
    async with http.get("/ops") as resp:
        assert {op["method"] for op in await resp.json()} == {"mix"}


# -- operations that never finish or vanish ------------------------------------
async def test_operation_that_never_finishes(
    http: aiohttp.ClientSession, wesog_emulator: EmulatorServer
) -> None:
    wesog_emulator.state.faults.script("POST /imgs", ["never_finish"])
    async with http.post("/imgs", json=ONE) as resp:
        stuck = (await resp.json())["op_id"]
    async with http.post("/imgs?wait=true", json=[{"id": "b", "src": SRC}]) as resp:
        assert (await resp.json())["is_finished"] is True  # the queue moves on
    async with http.get(f"/ops/{stuck}") as resp:
        op = await resp.json()
    assert (op["is_started"], op["is_finished"], op["num_good"]) == (True, False, 0)
    assert "a" not in wesog_emulator.state.images("k")
    async with http.delete(f"/ops/{stuck}") as resp:
        assert resp.status == 409


async def test_operation_that_vanishes(
    http: aiohttp.ClientSession, wesog_emulator: EmulatorServer
) -> None:
    wesog_emulator.state.faults.script("POST /imgs", ["vanish"])
    async with http.post("/imgs", json=ONE) as resp:
        assert resp.status == 202
        op_id = (await resp.json())["op_id"]
    await wait_applied(wesog_emulator)
    for method in ("GET", "DELETE"):
        async with http.request(method, f"/ops/{op_id}") as resp:
            assert resp.status == 404
    async with http.get("/ops") as resp:
        assert await resp.json() == []
    # On a read route, "vanish" is a plain 404.
    async with http.post("/imgs?wait=true", json=ONE) as resp:
        op_id = (await resp.json())["op_id"]
    wesog_emulator.state.faults.script("GET /ops/{op_id}", ["vanish"])
    async with http.get(f"/ops/{op_id}") as resp:
        assert resp.status == 404
    async with http.get(f"/ops/{op_id}") as resp:
        assert resp.status == 200


# -- keep-alive connections closed ---------------------------------------------
async def raw_get(srv: EmulatorServer) -> tuple[bytes, bytes]:
    """One keep-alive request on a raw socket: (response head, what follows)."""
    reader, writer = await asyncio.open_connection(srv.host, srv.port)
    try:
        writer.write(b"GET /ops HTTP/1.1\r\nHost: x\r\nAPI-Key: k\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        try:
            after = await asyncio.wait_for(reader.read(1), 0.3)
        except TimeoutError:
            after = b"<still open>"
        return head, after
    finally:
        writer.close()
        await writer.wait_closed()


async def test_close_idle_keep_alive_connection(wesog_emulator: EmulatorServer) -> None:
    head, after = await raw_get(wesog_emulator)
    assert after == b"<still open>"  # normally the connection stays open
    wesog_emulator.state.faults.script("GET /ops", ["close_idle", "close_idle(0.05)"])
    for _ in range(2):
        head, after = await raw_get(wesog_emulator)
        assert head.startswith(b"HTTP/1.1 200")
        assert b"connection: close" not in head.lower()  # no warning given
        assert after == b""  # then EOF: closed by the server


# -- configuration: SPEC, HTTP and CLI -----------------------------------------
async def test_faults_over_http(wesog_emulator: EmulatorServer) -> None:
    url = wesog_emulator.url + "/_emulator/faults"
    async with aiohttp.ClientSession() as anon:
        body = {
            "spec": "GET /ops 503 times=1",
            "rules": [{"kind": "status", "status": 429, "route": "GET /imgs", "retry_after": "1"}],
            "scripts": {"DELETE /imgs": ["reset_before", None, {"kind": "delay", "delay_s": 0.01}]},
        }
        async with anon.post(url, json=body) as resp:
            assert resp.status == 200
            listed = await resp.json()
        assert len(listed["rules"]) == 2
        assert listed["scripts"]["DELETE /imgs"][1] is None
        async with anon.get(url) as resp:
            assert await resp.json() == listed
        async with anon.get(wesog_emulator.url + "/ops", headers={"API-Key": "k"}) as resp:
            assert resp.status == 503
        for bad in ({"spec": "nonsense"}, {"rules": [{"kind": "boom"}]}, {"what": 1}, [1]):
            async with anon.post(url, json=bad) as resp:
                assert resp.status == 422
                assert resp.status == 422, bad
        async with anon.post(url, json={"replace": True, "spec": "GET /imgs 502"}) as resp:
            assert len((await resp.json())["rules"]) == 1
        async with anon.delete(url) as resp:
            assert resp.status == 200
        async with anon.get(url) as resp:
            assert await resp.json() == {"rules": [], "scripts": {}}
        async with anon.get(wesog_emulator.url + "/_emulator/stats") as resp:
            stats = await resp.json()
    assert stats["faults"] == {"503": 1}  # internal routes are never faulted or counted


async def test_config_faults_and_reset_clears_them() -> None:
    cfg = EmulatorConfig(api_keys=("k",), faults="GET /ops script 503, pass, 502")
    async with (
        EmulatorServer(cfg) as srv,
        aiohttp.ClientSession(srv.url, headers={"API-Key": "k"}) as http,
    ):
        statuses = []
        for _ in range(4):
            async with http.get("/ops") as resp:
                statuses.append(resp.status)
        assert statuses == [503, 200, 502, 200]
        srv.state.faults.add(FaultRule(kind="status"))
        srv.state.reset()
        async with http.get("/ops") as resp:
            assert resp.status == 200


def test_spec_parsing() -> None:
    rules, scripts = parse_spec(
        "POST /imgs 503 p=0.2; GET /ops/{op_id} truncated_json times=3;"
        " * 429(0.5); POST /imgs script 503, reset_after, pass, 429(ra=date+1);"
        " /imgs wrong_types(is_finished, num_good) ; close_idle(0.05) p=0.5;"
        ' 429(retry_after="Wed, 21 Oct 2015 07:28:00 GMT"); content_type(text/plain; charset=utf-8)'
    )
    assert rules[0] == FaultRule(kind="status", status=503, route="POST /imgs", probability=0.2)
    assert rules[1] == FaultRule(kind="truncated_json", route="GET /ops/{op_id}", times=3)
    assert rules[2] == FaultRule(kind="status", status=429, retry_after="0.5")
    assert rules[3].fields == ("is_finished", "num_good")
    assert rules[3].route == "/imgs"
    assert (rules[4].kind, rules[4].delay_s, rules[4].probability) == ("close_idle", 0.05, 0.5)
    assert rules[5].retry_after == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert rules[6].content_type == "text/plain; charset=utf-8"
    ((route, actions),) = scripts
    assert route == "POST /imgs"
    assert actions[2] is None
    assert actions[3] == FaultRule(kind="status", status=429, retry_after="date+1")
    assert parse_action("pass") is None
    assert parse_action("wrong_types(fields=a|b)") == FaultRule(
        kind="wrong_types", fields=("a", "b")
    )


@pytest.mark.parametrize(
    "spec",
    [
        "POST",
        "POST /imgs",
        "foo",
        "503 q=1",
        "503 p",
        "503 times=x",
        "503 p=2",
        "503(x=1)",
        "pass",
        "pass(1)",
        "GET imgs 503",
        "429(",
        "delay(abc)",
        "999",
        "429(soon)",
        "script",
        "status",
        "* script ,",
    ],
)
def test_bad_specs(spec: str) -> None:
    with pytest.raises(FaultSpecError):
        parse_spec(spec)
    with pytest.raises(ValueError, match=r"."):
        EmulatorConfig(faults=spec)


def test_bad_rules() -> None:
    with pytest.raises(FaultSpecError):
        FaultRule(kind="status", times=-1)
    with pytest.raises(FaultSpecError):
        FaultRule(kind="delay", route="imgs")
    with pytest.raises(FaultSpecError):
        FaultRule(kind="status", probability=-0.1)


def test_cli_rejects_a_bad_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulator", "--faults", "POST /imgs 7777"]) == 2
    assert "status" in capsys.readouterr().err
