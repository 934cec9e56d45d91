"""The SPEC mini-language: text to :class:`FaultRule` objects (see the package docs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from wesog_async.emulator.faults.rules import (
    KINDS,
    METHODS,
    FaultRule,
    FaultSpecError,
    check_route,
)


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
        elif tokens[0] in METHODS:
            if len(tokens) < 2:
                raise FaultSpecError(f"missing path after {tokens[0]} in {text!r}")
            route = f"{tokens.pop(0)} {tokens.pop(0)}"
        if not tokens:
            raise FaultSpecError(f"missing action in {text!r}")
        check_route(None, None, route)
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
