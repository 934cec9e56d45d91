"""Applying a picked fault to a live request, and the ``/_emulator/faults`` routes."""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import json
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, Final

from aiohttp import web

from wesog_async.emulator.faults.injector import FaultInjector
from wesog_async.emulator.faults.rules import FaultRule
from wesog_async.emulator.operations import Operation

_OP_KINDS: Final = frozenset({"never_finish", "vanish"})
_SELF_TIMED: Final = frozenset({"delay", "hang", "close_idle"})
# A hang with no limit still ends when the client leaves or the server stops;
# this is how often it looks.
_HANG_POLL_S: Final = 0.02

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_OP_FAULT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "wesog_emulator_op_fault", default=None
)


def mark_operation(op: Operation) -> None:
    """Give ``op`` the operation-level fault of the current request, if any."""
    kind = _OP_FAULT.get()
    if kind == "never_finish":
        op.never_finish = True
    elif kind == "vanish":
        op.vanished = True


def _retry_after(value: str) -> str:
    if value.startswith("date+"):
        ahead = float(value[5:])
        return email.utils.formatdate(time.time() + ahead, usegmt=True)
    return value


def _status_response(rule: FaultRule) -> web.Response:
    headers = {}
    if rule.retry_after is not None:
        headers["Retry-After"] = _retry_after(rule.retry_after)
    try:
        reason = HTTPStatus(rule.status).phrase
    except ValueError:
        reason = "Injected"
    body = json.dumps({"detail": f"{reason} (injected fault)"}).encode()
    return web.Response(
        status=rule.status, body=body, headers=headers, content_type="application/json"
    )


def _abort(request: web.Request) -> web.Response:
    """Drop the connection with no response (aiohttp ignores the returned object)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=499)


async def _hang(request: web.Request, closing: asyncio.Event, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s if limit_s > 0 else None
    while not closing.is_set():
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        if deadline is not None and time.monotonic() >= deadline:
            return
        await asyncio.sleep(_HANG_POLL_S)


def _wrong_type(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return [value]
    if value is None:
        return "null"
    return json.dumps(value)


def _rewrite(obj: Any, rule: FaultRule) -> None:
    """Mutate one JSON object the way ``rule`` says."""
    if not isinstance(obj, dict):
        return
    if rule.kind == "wrong_types":
        for name in rule.fields or ("is_finished", "num_good"):
            if name in obj:
                obj[name] = _wrong_type(obj[name])
    elif rule.kind == "extra_fields":
        obj["x_emulator_extra"] = {"nested": [1, 2, 3], "flag": True}
        obj["region"] = "eu-west-1"
    elif rule.kind == "unknown_enum":
        if "method" in obj:
            obj["method"] = "mix"
    elif rule.kind == "no_op_id":
        for key in ("op_id", "id", "operation_id"):
            obj.pop(key, None)


def _with_body(response: web.StreamResponse, body: bytes, content_type: str) -> web.Response:
    """The same status and headers with another body and Content-Type."""
    headers = {
        k: v
        for k, v in response.headers.items()
        if k.lower() not in ("content-type", "content-length")
    }
    headers["Content-Type"] = content_type
    return web.Response(status=response.status, body=body, headers=headers)


async def inject(
    request: web.Request, rule: FaultRule, call: Handler, closing: asyncio.Event
) -> web.StreamResponse:
    """Serve ``request`` through ``call`` with ``rule``'s fault applied."""
    kind = rule.kind
    if rule.delay_s > 0 and kind not in _SELF_TIMED:
        await asyncio.sleep(rule.delay_s)
    if kind == "status":
        return _status_response(rule)
    if kind == "delay":
        await asyncio.sleep(rule.delay_s)
        return await call(request)
    if kind == "hang":
        await _hang(request, closing, rule.delay_s)
        transport = request.transport
        if transport is None or transport.is_closing():
            return web.Response(status=499)  # nobody is listening any more
        if closing.is_set():
            return _status_response(FaultRule(kind="status", status=503))
        return await call(request)
    if kind == "reset_before":
        return _abort(request)
    if kind in _OP_KINDS:
        is_write = request.method in ("POST", "PUT", "PATCH", "DELETE")
        if is_write and request.path.startswith("/imgs"):
            token = _OP_FAULT.set(kind)
            try:
                return await call(request)
            finally:
                _OP_FAULT.reset(token)
        if kind == "vanish":
            return web.Response(
                status=404,
                body=b'{"detail":"Operation not found"}',
                content_type="application/json",
            )
        return await call(request)
    response = await call(request)
    if kind == "reset_after":
        return _abort(request)
    if kind == "close_idle":
        await response.prepare(request)
        await response.write_eof()
        transport = request.transport
        if transport is not None:
            if rule.delay_s > 0:
                asyncio.get_running_loop().call_later(rule.delay_s, transport.close)
            else:
                transport.close()
        return response
    body = response.body if isinstance(response, web.Response) else None
    if not isinstance(body, bytes):
        return response
    if kind == "malformed_json":
        garbage = b'{"op_id": 1, "is_finished": tru, ' + body[:20]
        return _with_body(response, garbage, "application/json")
    if kind == "truncated_json":
        return _with_body(response, body[: max(1, len(body) // 2)], "application/json")
    if kind == "content_type":
        return _with_body(response, body, rule.content_type)
    # wrong_types, extra_fields, unknown_enum, no_op_id: rewrite the JSON object(s)
    try:
        data = json.loads(body)
    except ValueError:
        return response
    for obj in data if isinstance(data, list) else [data]:
        _rewrite(obj, rule)
    return _with_body(response, json.dumps(data).encode(), "application/json")


# -- the /_emulator/faults routes ------------------------------------------------------------
def add_routes(app: web.Application, prefix: str, state_key: web.AppKey[Any]) -> None:
    """``GET``/``POST``/``DELETE`` ``{prefix}faults``: list, add, clear faults."""

    async def show(request: web.Request) -> web.StreamResponse:
        return web.json_response(request.app[state_key].faults.to_json())

    async def add(request: web.Request) -> web.StreamResponse:
        injector: FaultInjector = request.app[state_key].faults
        try:
            injector.load_json(await request.json())
        except (ValueError, TypeError) as exc:
            error = {"type": "value_error", "loc": ["body"], "msg": f"Value error, {exc}"}
            return web.json_response({"detail": [error]}, status=422)
        return web.json_response(injector.to_json())

    async def clear(request: web.Request) -> web.StreamResponse:
        request.app[state_key].faults.clear()
        return web.json_response({"cleared": True})

    app.router.add_get(prefix + "faults", show)
    app.router.add_post(prefix + "faults", add)
    app.router.add_delete(prefix + "faults", clear)
