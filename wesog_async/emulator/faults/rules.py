"""What a fault is: :class:`FaultRule`, its kinds, and route patterns."""

from __future__ import annotations

import email.utils
import fnmatch
from typing import Any, Final, Literal, get_args

import attrs

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
METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class FaultSpecError(ValueError):
    """A SPEC or a FaultRule that cannot be understood."""


def _check_kind(_inst: object, _attr: object, kind: str) -> None:
    if kind not in KINDS:
        raise FaultSpecError(f"unknown fault kind {kind!r}; one of: {', '.join(KINDS)}")


def _check_probability(_inst: object, _attr: object, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise FaultSpecError(f"probability must be within 0..1, got {value!r}")


def check_route(_inst: object, _attr: object, route: str) -> None:
    if route != "*" and not route.startswith("/"):
        method, _, path = route.partition(" ")
        if method not in METHODS or not (path == "*" or path.startswith("/")):
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
    route: str = attrs.field(default="*", validator=check_route)
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


def _normalise_route(route: str) -> str:
    return f"* {route}" if route.startswith("/") else route


def route_matches(pattern: str, route: str) -> bool:
    """Whether a rule's ``pattern`` covers the request's ``route`` key."""
    if pattern == "*":
        return True
    return fnmatch.fnmatchcase(route, _normalise_route(pattern))
