"""Fault injection (placeholder until phase 2)."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import attrs
from aiohttp import web


@attrs.frozen
class FaultRule:
    kind: str
    route: str = "*"


class FaultInjector:
    """Holds fault rules and scripts; picks the fault for each request."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)

    def load_spec(self, spec: str) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        pass

    def pick(self, route: str) -> FaultRule | None:
        return None


async def inject(
    request: web.Request,
    rule: FaultRule,
    call: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    return await call(request)


def mark_operation(op: object) -> None:
    """Apply a pending operation-level fault to ``op`` (phase 2)."""


def add_routes(app: web.Application, prefix: str) -> None:
    pass


SPEC_HELP = "fault SPEC: see wesog_async.emulator.faults (phase 2)"
