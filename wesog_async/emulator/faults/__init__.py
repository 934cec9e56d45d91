"""Fault injection: make chosen routes misbehave, by probability or by script.

Faults are picked per request from the *route key* (``"POST /imgs"``,
``"GET /ops/{op_id}"``, ... the names used in the request counters). A
*script* for a route is consumed first, one action per call (``None``/``pass``
lets that call through); then the *rules* are tried in order, each firing
with its ``probability`` (seeded RNG) until its ``times`` budget is spent.
Injected faults are counted in ``counters.faults`` under their label (the
status code, e.g. ``"503"``, or the kind). Rule routes are patterns (``*`` is a
wildcard; a bare path means any method); script routes are looked up as the
exact route key, then ``"METHOD *"``, the bare path, and ``"*"``.

From Python::

    state.faults.add(FaultRule(kind="status", status=429, retry_after="0.5", probability=0.1))
    state.faults.script("POST /imgs", ["503", "reset_after", None, FaultRule(kind="hang")])
    state.faults.clear()

Over HTTP (no API key): ``POST /_emulator/faults`` with
``{"spec": SPEC, "rules": [FaultRule fields...], "scripts": {route: [ACTION or
FaultRule fields or null]}, "replace": bool, "seed": int}`` (all optional; a
bad spec is a 422), ``GET`` lists what is armed, ``DELETE`` clears.

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

from wesog_async.emulator.faults.inject import add_routes, inject, mark_operation
from wesog_async.emulator.faults.injector import FaultInjector
from wesog_async.emulator.faults.rules import (
    KINDS,
    FaultKind,
    FaultRule,
    FaultSpecError,
    ScriptAction,
    route_matches,
)
from wesog_async.emulator.faults.spec import SPEC_HELP, parse_action, parse_spec

__all__ = [
    "KINDS",
    "SPEC_HELP",
    "FaultInjector",
    "FaultKind",
    "FaultRule",
    "FaultSpecError",
    "ScriptAction",
    "add_routes",
    "inject",
    "mark_operation",
    "parse_action",
    "parse_spec",
    "route_matches",
]
