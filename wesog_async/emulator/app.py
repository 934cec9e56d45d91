"""The aiohttp application: routes, middlewares and the internal control routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from wesog_async.emulator import faults, handlers, tag
from wesog_async.emulator.config import EmulatorConfig
from wesog_async.emulator.http import STATE_KEY, detail, json_response, route_key, state_of
from wesog_async.emulator.state import EmulatorState
from wesog_async.emulator.validation import RequestValidationError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

INTERNAL_PREFIX = "/_emulator/"


@web.middleware
async def _errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer errors the FastAPI way (JSON ``detail``) and count response statuses."""
    try:
        response = await handler(request)
    except RequestValidationError as exc:
        response = json_response({"detail": exc.detail}, 422)
    except web.HTTPRequestEntityTooLarge:
        limit = state_of(request).config.max_body_bytes
        response = detail(413, f"Request body larger than the {limit} byte limit")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = detail(
            exc.status,
            exc.reason,
            {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None,
        )
    if not request.path.startswith(INTERNAL_PREFIX):
        state_of(request).counters.responses[response.status] += 1
    return response


async def _authenticated(request: web.Request, handler: Handler) -> web.StreamResponse:
    """D5: a missing or unknown ``API-Key`` is a 401 (the key is never echoed)."""
    key = request.headers.get("API-Key")
    if key is None:
        return detail(401, "Missing API key")
    if state_of(request).tenant(key) is None:
        return detail(401, "Invalid API key")
    limit = state_of(request).config.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return detail(413, f"Request body larger than the {limit} byte limit")
    return await handler(request)


@web.middleware
async def _api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count the request, inject any fault for its route, then authenticate."""
    if request.path.startswith(INTERNAL_PREFIX):
        return await handler(request)
    state = state_of(request)
    route = route_key(request)
    state.counters.requests[route] += 1
    if request.match_info.http_exception is not None:
        raise request.match_info.http_exception  # unknown path or method: 404/405, no auth

    async def call(req: web.Request) -> web.StreamResponse:
        return await _authenticated(req, handler)

    rule = state.faults.pick(route)
    if rule is None:
        return await call(request)
    state.counters.faults[rule.label] += 1
    return await faults.inject(request, rule, call, state.closing)


# -- internal control routes ---------------------------------------------------------
async def _stats(request: web.Request) -> web.StreamResponse:
    return json_response(state_of(request).stats())


async def _reset(request: web.Request) -> web.StreamResponse:
    state_of(request).reset()
    return json_response({"reset": True})


async def _workers(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE_KEY]
    state.start_workers()
    yield
    await state.stop_workers()


async def _on_shutdown(app: web.Application) -> None:
    # Release wait=true requests and hung handlers before the runner waits on them.
    app[STATE_KEY].closing.set()


def create_app(config: EmulatorConfig | None = None) -> web.Application:
    """A ready-to-run emulator application; ``app[STATE_KEY]`` is its state."""
    config = config or EmulatorConfig()
    app = web.Application(
        middlewares=[_errors_middleware, _api_middleware],
        client_max_size=config.max_body_bytes,
    )
    app[STATE_KEY] = EmulatorState(config)
    app.cleanup_ctx.append(_workers)
    app.on_shutdown.append(_on_shutdown)
    app.router.add_get("/imgs", handlers.search_images)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        app.router.add_route(method, "/imgs", handlers.write)
        app.router.add_route(method, "/imgs/{image_id}", handlers.write)
    app.router.add_get("/imgs/{image_id}", handlers.get_image)
    app.router.add_get("/ops", handlers.list_ops)
    app.router.add_get("/ops/{op_id}", handlers.get_op)
    app.router.add_delete("/ops/{op_id}", handlers.cancel_op)
    app.router.add_post("/tag/image", tag.tag_image)
    app.router.add_get(INTERNAL_PREFIX + "stats", _stats)
    app.router.add_post(INTERNAL_PREFIX + "reset", _reset)
    faults.add_routes(app, INTERNAL_PREFIX, STATE_KEY)
    return app
