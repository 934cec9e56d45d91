"""Fault injection: make chosen routes misbehave, by probability or by script.

Faults are picked per request from the *route key* (``"POST /imgs"``,
``"GET /ops/{op_id}"``, ... the names used in the request counters). A
*script* for a route is consumed first, one action per call (``None``/``pass``
lets that call through); then the *rules* are tried in order, each firing
with its ``probability`` (seeded RNG) until its ``times`` budget is spent.
Injected faults are counted in ``counters.faults`` under their label.

Kinds (``FaultRule.kind``)::

    status          answer ``status`` (429, 503, 413, ...) without running the
                    handler; ``retry_after`` adds a Retry-After header:
                    seconds ("2"), fractional ("0.5"), "date+N" (an HTTP date
                    N seconds ahead) or a literal HTTP date
    delay           wait ``delay_s`` seconds, then answer normally
    hang            never answer (until the client goes away, the server
                    stops, or ``delay_s`` passes if > 0, then answer normally)
    reset_before    abort the connection before the body is read (nothing applied)
    reset_after     run the request (it IS applied), then abort: no response
    malformed_json  run the request, answer with invalid JSON
    truncated_json  run the request, answer with the first half of its JSON
    content_type    run the request, answer its body as ``content_type``
    wrong_types     run the request, then retype fields of the JSON object(s):
                    booleans become "yes"/"no", numbers strings ("5"), ...
                    (``fields``; default ``is_finished`` and ``num_good``)
    extra_fields    run the request, add unknown keys to the JSON object(s)
    unknown_enum    run the request, set ``method`` to "mix"
    no_op_id        run the request, drop ``op_id`` from the JSON object(s)
    never_finish    a write whose operation starts and never finishes
    vanish          a write whose operation is applied but then 404s on
                    GET/DELETE /ops/{op_id}; on other routes, a 404 answer
    close_idle      answer normally, then close the kept-alive connection
                    after ``delay_s`` (default at once) without warning

Every kind except delay/hang/close_idle first waits ``delay_s`` if set.

SPEC mini-language (``wesog-async emulator --faults SPEC``, ``EmulatorConfig(faults=...)``,
``POST /_emulator/faults {"spec": ...}``)::

    SPEC   := RULE (";" RULE)*
    RULE   := [ROUTE] ACTION ("p=" FLOAT | "times=" INT)*      a rule
            | [ROUTE] "script" ACTION ("," ACTION)*            a script
    ROUTE  := "*" | METHOD PATH | METHOD "*" | PATH            (default "*")
    ACTION := CODE ["(" RETRY_AFTER ")"] | KIND ["(" ARGS ")"] | "pass"
    ARGS   := VALUE ("," VALUE)* | KEY "=" VALUE ("," KEY "=" VALUE)*

CODE is a status (``503``). A positional argument is ``delay_s`` for
delay/hang/close_idle (and any kind with ``delay=``), the type for
content_type, field names for wrong_types, Retry-After for a code. Keys:
``retry_after``/``ra``, ``delay``, ``content_type``, ``fields`` (``a|b``).
Values may be quoted. Examples::

    POST /imgs 503 p=0.2; GET /ops/{op_id} truncated_json times=3
    * 429(0.5) p=0.05; POST /imgs script 503, reset_after, pass, 429(ra=date+1)
    GET /ops/{op_id} wrong_types(is_finished, num_good) p=0.1; * close_idle(0.05) p=0.5
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import fnmatch
import json
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any, Final, Literal, get_args

import attrs
from aiohttp import web

from wesog_async.emulator.operations import Operation

FaultKind = Literal[
    "status",
    "delay",
    "hang",
    "reset_before",
    "reset_after",
    "malformed_json",
    "truncated_json",
    "content_type",
    "wrong_types",
    "extra_fields",
    "unknown_enum",
    "no_op_id",
    "never_finish",
    "vanish",
    "close_idle",
]
KINDS: Final[tuple[str, ...]] = get_args(FaultKind)
_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_OP_KINDS: Final = frozenset({"never_finish", "vanish"})
_BODY_KINDS: Final = frozenset({"wrong_types", "extra_fields", "unknown_enum", "no_op_id"})
_SELF_TIMED: Final = frozenset({"delay", "hang", "close_idle"})
# A hang with no limit still ends when the client leaves or the server stops;
# this is how often it looks.
_HANG_POLL_S: Final = 0.02

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FaultSpecError(ValueError):
    """A SPEC or a FaultRule that cannot be understood."""


def _check_kind(_inst: object, _attr: object, kind: str) -> None:
    if kind not in KINDS:
        raise FaultSpecError(f"unknown fault kind {kind!r}; one of: {', '.join(KINDS)}")


def _check_probability(_inst: object, _attr: object, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise FaultSpecError(f"probability must be within 0..1, got {value!r}")


def _check_route(_inst: object, _attr: object, route: str) -> None:
    if route != "*" and not route.startswith("/"):
        method, _, path = route.partition(" ")
        if method not in _METHODS or not (path == "*" or path.startswith("/")):
            raise FaultSpecError(
                f"route {route!r} should look like '*', 'POST /imgs', 'GET *' or '/imgs'"
            )


@attrs.frozen(kw_only=True)
class FaultRule:
    """One fault: what to do (``kind`` and its parameters), where and how often.

    ``route`` is a route key (``"POST /imgs"``) or a pattern (``"*"``,
    ``"GET *"``, ``"/ops/{op_id}"`` for any method). ``times`` caps how many
    requests it hits (``None``: unlimited). See the module docstring for kinds.
    """

    kind: FaultKind = attrs.field(validator=_check_kind)
    route: str = attrs.field(default="*", validator=_check_route)
    probability: float = attrs.field(default=1.0, validator=_check_probability)
    times: int | None = attrs.field(default=None)
    status: int = attrs.field(default=503)
    retry_after: str | None = attrs.field(default=None)
    delay_s: float = 0.0
    content_type: str = "text/html; charset=utf-8"
    fields: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    @status.validator
    def _check_status(self, _attr: object, value: int) -> None:
        if not 100 <= value <= 599:
            raise FaultSpecError(f"status must be an HTTP status code, got {value!r}")

    @times.validator
    def _check_times(self, _attr: object, value: int | None) -> None:
        if value is not None and value < 0:
            raise FaultSpecError(f"times must be >= 0 or None, got {value!r}")

    @retry_after.validator
    def _check_retry_after(self, _attr: object, value: str | None) -> None:
        if value is None:
            return
        text = value[5:] if value.startswith("date+") else value
        try:
            float(text)
        except ValueError:
            if value.startswith("date+") or email.utils.parsedate_tz(value) is None:
                raise FaultSpecError(
                    f"retry_after must be seconds, 'date+SECONDS' or an HTTP date, got {value!r}"
                ) from None

    @property
    def label(self) -> str:
        """The name counted in ``counters.faults``: the status code or the kind."""
        return str(self.status) if self.kind == "status" else self.kind

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


ScriptAction = FaultRule | str | None


class _Armed:
    """A rule and how many more times it may fire."""

    __slots__ = ("remaining", "rule")

    def __init__(self, rule: FaultRule) -> None:
        self.rule = rule
        self.remaining = rule.times


def _normalise_route(route: str) -> str:
    return f"* {route}" if route.startswith("/") else route


def route_matches(pattern: str, route: str) -> bool:
    """Whether a rule's ``pattern`` covers the request's ``route`` key."""
    if pattern == "*":
        return True
    return fnmatch.fnmatchcase(route, _normalise_route(pattern))


class FaultInjector:
    """The faults of one emulator: ``add`` rules, ``script`` routes, ``clear``."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self._rules: list[_Armed] = []
        self._scripts: dict[str, deque[FaultRule | None]] = {}

    # -- configuring -----------------------------------------------------------------
    def add(self, *rules: FaultRule) -> None:
        """Add rules (tried in the order added)."""
        self._rules.extend(_Armed(rule) for rule in rules)

    def script(self, route: str, actions: Iterable[ScriptAction]) -> None:
        """Queue ``actions`` for the next calls to ``route``, one per call.

        An action is a :class:`FaultRule` (its route is ignored), an ACTION of
        the SPEC language (``"503"``, ``"429(ra=1)"``, ``"reset_after"``) or
        ``None``/``"pass"`` for a call that goes through untouched.
        """
        _check_route(None, None, route)
        queue = self._scripts.setdefault(route, deque())
        queue.extend(
            a if isinstance(a, FaultRule) or a is None else parse_action(a) for a in actions
        )

    def load_spec(self, spec: str) -> None:
        """Add the rules and scripts of a SPEC string."""
        rules, scripts = parse_spec(spec)
        self.add(*rules)
        for route, actions in scripts:
            self.script(route, actions)

    def load_json(self, data: Any) -> None:
        """Add faults from the JSON accepted by ``POST /_emulator/faults``."""
        if not isinstance(data, dict):
            raise FaultSpecError("expected a JSON object")
        unknown = set(data) - {"spec", "rules", "scripts", "replace", "seed"}
        if unknown:
            raise FaultSpecError(f"unknown keys: {sorted(unknown)}")
        try:
            rules = [FaultRule(**r) for r in data.get("rules", [])]
            scripts = {
                route: [FaultRule(**a) if isinstance(a, dict) else a for a in actions]
                for route, actions in dict(data.get("scripts", {})).items()
            }
        except TypeError as exc:
            raise FaultSpecError(str(exc)) from None
        spec = data.get("spec", "")
        parsed = parse_spec(spec) if spec else ([], [])
        if data.get("replace"):
            self.clear()
        if "seed" in data:
            self.rng.seed(data["seed"])
        self.add(*rules, *parsed[0])
        for route, actions in [*scripts.items(), *parsed[1]]:
            self.script(route, actions)

    def clear(self) -> None:
        """Remove every rule and script."""
        self._rules.clear()
        self._scripts.clear()

    def to_json(self) -> dict[str, Any]:
        """The rules (with ``remaining``) and the scripts still pending."""
        return {
            "rules": [dict(a.rule.to_json(), remaining=a.remaining) for a in self._rules],
            "scripts": {
                route: [None if a is None else a.to_json() for a in actions]
                for route, actions in self._scripts.items()
            },
        }

    # -- picking ----------------------------------------------------------------------
    def pick(self, route: str) -> FaultRule | None:
        """The fault for this request to ``route``, or ``None``."""
        if self._scripts:
            method = route.partition(" ")[0]
            for pattern in (route, f"{method} *", route.partition(" ")[2], "*"):
                queue = self._scripts.get(pattern)
                if queue:
                    action = queue.popleft()
                    if not queue:
                        del self._scripts[pattern]
                    return action
        for armed in self._rules:
            if armed.remaining == 0 or not route_matches(armed.rule.route, route):
                continue
            if armed.rule.probability < 1.0 and self.rng.random() >= armed.rule.probability:
                continue
            if armed.remaining is not None:
                armed.remaining -= 1
            return armed.rule
        return None


# -- the SPEC language -------------------------------------------------------------------
def _split(text: str, separators: str) -> list[str]:
    """Split at ``separators`` outside quotes and parentheses; strip the parts."""
    parts: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for char in text:
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0 and char in separators:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if quote or depth:
        raise FaultSpecError(f"unbalanced quotes or parentheses in {text!r}")
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _number(value: str, what: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise FaultSpecError(f"{what} must be a number, got {value!r}") from None


def parse_action(
    text: str, *, route: str = "*", options: Mapping[str, str] | None = None
) -> FaultRule | None:
    """One ACTION of the SPEC language (``"pass"`` gives ``None``)."""
    text = text.strip()
    name, paren, rest = text.partition("(")
    name, rest = name.strip(), rest.strip()
    if paren and not rest.endswith(")"):
        raise FaultSpecError(f"missing ')' in {text!r}")
    args = _split(rest[:-1], ",") if paren else []
    if name == "pass":
        if args:
            raise FaultSpecError(f"'pass' takes no arguments: {text!r}")
        return None
    kwargs: dict[str, Any] = {"route": route}
    if name.isdigit():
        kwargs.update(kind="status", status=int(name))
    elif name in KINDS and name != "status":
        kwargs["kind"] = name
    else:
        raise FaultSpecError(f"unknown fault {name!r}: a status code or one of {', '.join(KINDS)}")
    positional: list[str] = []
    for arg in args:
        key, eq, value = arg.partition("=")
        key = key.strip()
        if eq and key in _ARG_KEYS:
            kwargs[_ARG_KEYS[key]] = _unquote(value)
        elif eq and key.isidentifier():
            raise FaultSpecError(f"unknown argument {key!r} in {text!r}")
        else:  # a plain value, possibly with '=' inside (a quoted date, a MIME type)
            positional.append(_unquote(arg))
    if positional:
        kind = kwargs["kind"]
        if kind == "status":
            kwargs["retry_after"] = positional[0]
        elif kind == "content_type":
            kwargs["content_type"] = positional[0]
        elif kind == "wrong_types":
            kwargs["fields"] = tuple(positional)
        else:
            kwargs["delay_s"] = positional[0]
    if "delay_s" in kwargs:
        kwargs["delay_s"] = _number(str(kwargs["delay_s"]), "delay")
    if isinstance(kwargs.get("fields"), str):
        kwargs["fields"] = tuple(f for f in kwargs["fields"].split("|") if f)
    for key, value in (options or {}).items():
        if key == "p":
            kwargs["probability"] = _number(value, "p")
        elif key == "times":
            if not value.isdigit():
                raise FaultSpecError(f"times must be a whole number, got {value!r}")
            kwargs["times"] = int(value)
        else:
            raise FaultSpecError(f"unknown option {key!r} (p= or times=)")
    return FaultRule(**kwargs)


_ARG_KEYS: Final = {
    "retry_after": "retry_after",
    "ra": "retry_after",
    "delay": "delay_s",
    "delay_s": "delay_s",
    "content_type": "content_type",
    "fields": "fields",
}


def parse_spec(spec: str) -> tuple[list[FaultRule], list[tuple[str, list[FaultRule | None]]]]:
    """Parse a SPEC into ``(rules, [(route, script actions), ...])``."""
    rules: list[FaultRule] = []
    scripts: list[tuple[str, list[FaultRule | None]]] = []
    for text in _split(spec, ";"):
        tokens = _split(text, " \t\n")
        route = "*"
        if tokens[0] == "*" or tokens[0].startswith("/"):
            route = tokens.pop(0)
        elif tokens[0] in _METHODS:
            if len(tokens) < 2:
                raise FaultSpecError(f"missing path after {tokens[0]} in {text!r}")
            route = f"{tokens.pop(0)} {tokens.pop(0)}"
        if not tokens:
            raise FaultSpecError(f"missing action in {text!r}")
        _check_route(None, None, route)
        action, options = tokens[0], tokens[1:]
        if action == "script":
            actions = _split(" ".join(options), ",")
            if not actions:
                raise FaultSpecError(f"empty script in {text!r}")
            scripts.append((route, [parse_action(a) for a in actions]))
            continue
        opts: dict[str, str] = {}
        for option in options:
            key, eq, value = option.partition("=")
            if not eq:
                raise FaultSpecError(f"expected p=... or times=..., got {option!r} in {text!r}")
            opts[key] = value
        rule = parse_action(action, route=route, options=opts)
        if rule is None:
            raise FaultSpecError(f"'pass' is only meaningful in a script: {text!r}")
        rules.append(rule)
    return rules, scripts


SPEC_HELP: Final = """\
fault SPEC (--faults), rules separated by ';':
  [ROUTE] ACTION [p=PROB] [times=N]       e.g.  POST /imgs 503 p=0.2
  [ROUTE] script ACTION, ACTION, ...      e.g.  POST /imgs script 503, reset_after, pass
ROUTE: '*' (default), 'METHOD PATH' ('GET /ops/{op_id}'), 'METHOD *', or a PATH.
ACTION: a status code with optional Retry-After (429(2), 429(0.5), 429(ra=date+1)),
  delay(S), hang, hang(S), reset_before, reset_after, malformed_json, truncated_json,
  content_type(text/plain), wrong_types(is_finished, num_good), extra_fields,
  unknown_enum, no_op_id, never_finish, vanish, close_idle(S), pass (scripts only).
Example: --faults "* 429(0.5) p=0.05; GET /ops/{op_id} truncated_json times=3"
"""


# -- applying a fault to a request ---------------------------------------------------------
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
    # _BODY_KINDS: rewrite the JSON object(s)
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
