"""A scripted Wesog server for bulk ingestion tests (aiohttp.web on 127.0.0.1,
not the emulator): each write request takes the next :class:`Step` of a
script, each operation answers its polls with the status its step names, and
the server keeps the truth (which ids it really applied) to check reports
against."""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Callable, Iterable
from typing import Any, Literal

import attrs
from aiohttp import web

from wesog_async.bulk import IngestReport, Outcome

#: What the server does with one write request.
Action = Literal[
    "accept",  # 202 with an op id; the items not in `fail` are applied
    "accept_applied_500",  # applies, then answers 500 (maybe applied)
    "reject_500",  # answers 500 without applying
    "reject_503",  # answers 503 (certainly not applied)
    "reject_400",  # answers 400 (certainly not applied)
    "no_op_id",  # applies, answers 202 without an op id
    "reset_applied",  # applies, then drops the connection
    "slow_accept",  # like accept, after `delay` seconds
]
#: What the finished status of an accepted operation says.
Status = Literal[
    "consistent",
    "truncated",  # lists fewer errors than num_bad
    "counts_off",  # num_good + num_bad != num_total
    "other_op",  # a status about another operation
    "dup_index",  # one error listed twice
    "bad_index",  # an error naming an item not sent
    "all_good_lie",  # all_good disagrees with num_bad
    "total_off",  # num_total != the records sent
    "vanish",  # 404 for the operation
    "never",  # never finishes
]
ACTIONS: tuple[Action, ...] = (
    "accept", "accept_applied_500", "reject_500", "reject_503", "reject_400",
    "no_op_id", "reset_applied",
)  # fmt: skip
STATUSES: tuple[Status, ...] = (
    "consistent", "truncated", "counts_off", "other_op", "dup_index", "bad_index",
    "all_good_lie", "total_off", "vanish",
)  # fmt: skip


@attrs.frozen
class Step:
    """One write request's fate: the action, the item offsets the server fails
    (modulo the batch length), and the status its operation reports."""

    action: Action = "accept"
    fail: frozenset[int] = frozenset()
    status: Status = "consistent"
    delay: float = 0.0


@attrs.define
class _Op:
    op_id: int
    ids: list[str]
    failed: list[int]
    status: Status
    polls: int = 0


class ScriptedBulkServer:
    """``async with ScriptedBulkServer(steps) as server:``, then ``server.url``."""

    def __init__(
        self, steps: Iterable[Step] = (), *, on_write: Callable[[int], None] | None = None
    ) -> None:
        self.steps = list(steps)
        self.on_write = on_write
        #: Times each id was applied (the truth).
        self.applied: collections.Counter[str] = collections.Counter()
        #: Every id the server received in a write body.
        self.received: set[str] = set()
        self.writes = 0
        self.ops: dict[int, _Op] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> ScriptedBulkServer:
        app = web.Application()
        app.router.add_route("*", "/imgs", self._write)
        app.router.add_get("/ops/{op_id}", self._status)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def _apply(self, ids: list[str], failed: list[int]) -> None:
        for i, image_id in enumerate(ids):
            if i not in failed:
                self.applied[image_id] += 1

    async def _write(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        ids = [item if isinstance(item, str) else item["id"] for item in body]
        self.received.update(ids)
        self.writes += 1
        if self.on_write is not None:
            self.on_write(self.writes)
        step = self.steps.pop(0) if self.steps else Step()
        failed = sorted({i % len(ids) for i in step.fail}) if ids else []
        if step.action in ("reject_500", "reject_503", "reject_400"):
            status = int(step.action[-3:])
            return web.json_response({"detail": "scripted"}, status=status)
        if step.action == "slow_accept":
            await asyncio.sleep(step.delay)
        self._apply(ids, failed)
        if step.action == "accept_applied_500":
            return web.json_response({"detail": "scripted"}, status=500)
        if step.action == "no_op_id":
            return web.json_response({}, status=202)
        if step.action == "reset_applied":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=202)
        op_id = len(self.ops) + 1
        self.ops[op_id] = _Op(op_id, ids, failed, step.status)
        return web.json_response({"op_id": op_id, "is_finished": False}, status=202)

    async def _status(self, request: web.Request) -> web.StreamResponse:
        op = self.ops.get(int(request.match_info["op_id"]))
        if op is None or op.status == "vanish":
            return web.json_response({"detail": "operation not found"}, status=404)
        op.polls += 1
        if op.status == "never":
            return web.json_response(
                {
                    "op_id": op.op_id,
                    "is_finished": False,
                    "num_total": len(op.ids),
                    "num_good": 0,
                    "num_bad": 0,
                }
            )
        return web.json_response(status_body(op.op_id, len(op.ids), op.failed, op.status))


def status_body(op_id: int, n: int, failed: list[int], status: Status) -> dict[str, Any]:
    """A finished status of ``status`` kind for ``n`` items with ``failed`` offsets."""
    bad = len(failed)
    errors = [{"id": i, "msg": "scripted failure"} for i in failed]
    body: dict[str, Any] = {
        "op_id": op_id, "num_total": n, "num_good": n - bad, "num_bad": bad,
        "is_started": True, "is_finished": True, "all_good": bad == 0, "errors": errors,
    }  # fmt: skip
    if status == "truncated" and errors:
        body["errors"] = errors[: len(errors) // 2]
    elif status == "counts_off":
        body["num_good"] = n - bad + 1
    elif status == "other_op":
        body["op_id"] = op_id + 1000
    elif status == "dup_index" and errors:
        body["errors"] = [*errors, errors[0]]
    elif status == "bad_index" and errors:
        body["errors"] = [*errors[1:], {"id": n + 5, "msg": "scripted failure"}]
    elif status == "all_good_lie":
        body["all_good"] = bad != 0
    elif status == "total_off":
        body["num_total"] = n + 1
        body["num_good"] = n + 1 - bad
    return body


def check_truth(
    report: IngestReport,
    ids: list[str],
    server: ScriptedBulkServer,
    outcomes: Iterable[Outcome] = (),
) -> None:
    """The invariant: every input record in exactly one bucket, the buckets
    adding up to the input, nothing counted applied (every record not listed
    as failed, invalid, unknown or not_sent) that the server did not apply,
    nothing not_sent that the server received."""
    assert report.total == len(ids), report.summary()
    counts = report.applied + report.failed + report.invalid + report.unknown + report.not_sent
    assert counts == report.total, report.summary()
    listed: dict[int, str] = {}
    for bucket, items in (
        ("failed", report.failed_items),
        ("invalid", report.invalid_items),
        ("unknown", report.unknown_items),
        ("not_sent", report.not_sent_items),
    ):
        for e in items:
            assert e.position not in listed, (e.position, listed[e.position], bucket)
            assert e.image_id in (None, ids[e.position]), e
            listed[e.position] = bucket
    claimed = {ids[p] for p in range(len(ids)) if p not in listed}
    assert len(claimed) == report.applied, report.summary()
    never = sorted(i for i in claimed if not server.applied[i])
    assert not never, f"reported applied, never applied by the server: {never}"
    for outcome in outcomes:
        assert set(outcome.applied_ids) <= claimed
    for e in report.not_sent_items:
        assert e.image_id not in server.received, f"{e.image_id} not_sent, but the server got it"
