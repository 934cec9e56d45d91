"""Small HTTP helpers shared by the emulator's handlers and middlewares."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from wesog_async.emulator.state import EmulatorState
from wesog_async.emulator.tenant import Tenant

STATE_KEY = web.AppKey("wesog_emulator_state", EmulatorState)

try:  # orjson is an optional speed-up (the ``speedups`` extra)
    import orjson

    def dumps(data: Any) -> bytes:
        return orjson.dumps(data)

except ImportError:  # pragma: no cover - depends on the environment

    def dumps(data: Any) -> bytes:
        return json.dumps(data, separators=(",", ":")).encode()


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=dumps(data), status=status, headers=headers, content_type="application/json"
    )


def detail(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """A FastAPI ``HTTPException`` body: ``{"detail": "..."}``."""
    return json_response({"detail": message}, status, headers)


def state_of(request: web.Request) -> EmulatorState:
    return request.app[STATE_KEY]


def tenant_of(request: web.Request) -> Tenant:
    """The authenticated tenant (the auth middleware already checked the key)."""
    tenant = state_of(request).tenant(request.headers.get("API-Key"))
    if tenant is None:  # pragma: no cover - the middleware answers 401 first
        raise web.HTTPUnauthorized
    return tenant


def route_key(request: web.Request) -> str:
    """``"POST /imgs"``, ``"GET /ops/{op_id}"``...: the name counters and faults use."""
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else "<unmatched>"
    return f"{request.method} {path}"
