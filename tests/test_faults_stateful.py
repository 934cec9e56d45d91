"""F24: random mixes of faults, submits, awaits, cancels and resumes.

A hypothesis state machine drives a real client against the emulator (one
event loop per run) and checks the FAULTS.md invariant against the emulator's
own counters: every record ends with exactly one outcome, a record reported
applied is stored and one reported failed is not, and nothing is applied twice
unless the client reported it unknown or resent.
"""

from __future__ import annotations

import asyncio
import contextlib

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from tests.conftest import FAST_POLL
from wesog_async import (
    ClientClosedError,
    ConnectError,
    OperationFuture,
    OutcomeUnknownError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    WesogClient,
    WesogError,
)
from wesog_async.emulator import EmulatorConfig, EmulatorServer

KEY = "stateful-key"
GOOD = "https://cdn.example.com/ok.jpg"
BAD = "https://down.invalid/ko.jpg"
RETRY = RetryPolicy(attempts=5, budget=5.0, backoff_initial=0.001, backoff_max=0.01)

FAULTS = [
    "POST /imgs 503",
    "POST /imgs 502",
    "POST /imgs 429(0)",
    "POST /imgs reset_after",
    "POST /imgs reset_before",
    "POST /imgs no_op_id",
    "POST /imgs hang(0.3)",
    "GET /ops/{op_id} malformed_json",
    "GET /ops/{op_id} truncated_json",
    "GET /ops/{op_id} 503",
    "* close_idle(0.001)",
]

APPLIED, FAILED, UNKNOWN = "applied", "failed", "unknown"


class FaultMix(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        config = EmulatorConfig(api_keys=(KEY,), item_delay_ms=0.05, workers_per_tenant=2)
        self.server = EmulatorServer(config, host="127.0.0.1", port=0)
        self.run(self.server.start())
        self.client = self.new_client()
        self.next_id = 0
        self.pending: list[OperationFuture] = []
        self.outcome: dict[str, str] = {}
        self.good_src: dict[str, bool] = {}
        self.resent: set[str] = set()

    def run(self, coro: object) -> object:
        return self.loop.run_until_complete(coro)  # type: ignore[arg-type]

    def new_client(self) -> WesogClient:
        client = WesogClient(
            api_key=KEY, base_url=self.server.url, retry=RETRY, poll=FAST_POLL, timeout=0.2
        )
        self.run(client.open())
        return client

    def settle(self, ids: tuple[str, ...], result: str) -> None:
        for image_id in ids:
            assert image_id not in self.outcome, f"{image_id} got a second outcome"
            self.outcome[image_id] = result

    @initialize(size=st.integers(1, 4))
    def first_submit(self, size: int) -> None:
        self.submit(None, 0.0, size, strict=False, bad=False)

    # Each submit arms (or clears) one fault first, so faults meet writes often.
    @rule(
        fault=st.none() | st.sampled_from(FAULTS),
        p=st.sampled_from([0.2, 0.5, 1.0]),
        size=st.integers(1, 4),
        strict=st.booleans(),
        bad=st.booleans(),
    )
    def submit(self, fault: str | None, p: float, size: int, strict: bool, bad: bool) -> None:
        self.server.state.faults.clear()
        if fault is not None:
            self.server.state.faults.load_spec(f"{fault} p={p}")
        ids = tuple(f"r{self.next_id + n}" for n in range(size))
        self.next_id += size
        records = []
        for n, image_id in enumerate(ids):
            good = not (bad and n == 0)
            self.good_src[image_id] = good
            records.append({"id": image_id, "src": GOOD if good else BAD})
        try:
            fut = self.run(self.client.images.create_many(records, strict=strict))
        except OutcomeUnknownError:
            self.settle(ids, UNKNOWN)
        except (ConnectError, RateLimitError):
            self.settle(ids, FAILED)  # certainly not applied
        except ServerError as exc:
            self.settle(ids, FAILED if exc.status == 503 else UNKNOWN)
        except WesogError:
            self.settle(ids, UNKNOWN)
        else:
            assert isinstance(fut, OperationFuture)
            if fut.resent:
                self.resent.update(ids)
            self.pending.append(fut)

    def resolve(self, fut: OperationFuture, timeout: float) -> None:
        try:
            self.run(fut.result(timeout=timeout))
        except TimeoutError:
            return  # still pending: keep it
        except ClientClosedError:
            return  # followed again after a restart
        except WesogError:
            self.pending.remove(fut)
            self.settle(fut.image_ids, UNKNOWN)
            return
        self.pending.remove(fut)
        failed = set(fut.failed_ids)
        applied = set(fut.applied_ids)
        assert not failed & applied, "nothing both applied and failed"
        assert failed | applied == set(fut.image_ids), "every record has a result"
        for image_id in fut.image_ids:
            self.settle((image_id,), FAILED if image_id in failed else APPLIED)

    @precondition(lambda self: bool(self.pending))
    @rule()
    def await_one(self) -> None:
        self.resolve(self.pending[0], timeout=0.5)

    @precondition(lambda self: bool(self.pending))
    @rule()
    def cancel_an_awaiter(self) -> None:
        fut = self.pending[-1]

        async def cancel_one() -> None:
            task = asyncio.ensure_future(fut.result())
            await asyncio.sleep(0.001)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WesogError):
                await task

        self.run(cancel_one())

    @rule()
    def restart_and_resume(self) -> None:
        tokens = [fut.token() for fut in self.pending]
        self.run(self.client.aclose())
        self.client = self.new_client()
        client = self.client

        async def follow_all() -> list[OperationFuture]:
            # follow() starts the poller, so it runs inside the loop.
            return [client.ops.follow(token) for token in tokens]

        self.pending = self.run(follow_all())  # type: ignore[assignment]

    def teardown(self) -> None:
        try:
            self.server.state.faults.clear()
            for fut in list(self.pending):
                self.resolve(fut, timeout=10)
            assert not self.pending
            self.run(self.client.aclose())
            state = self.server.state

            async def quiet() -> None:
                async with asyncio.timeout(10):
                    while True:
                        snap = state.counters.snapshot()
                        if snap["ops_finished"] + snap["ops_cancelled"] >= snap["ops_created"]:
                            return
                        await asyncio.sleep(0.005)

            self.run(quiet())
            assert set(self.outcome) == set(self.good_src), "outcomes sum to inputs"
            stored = state.images(KEY)
            applies = state.counters.applies_by_image
            for image_id, result in self.outcome.items():
                if result == APPLIED:
                    assert image_id in stored, f"{image_id} reported applied, not stored"
                    assert self.good_src[image_id]
                elif result == FAILED:
                    assert image_id not in stored, f"{image_id} reported failed, yet stored"
                if result != UNKNOWN and image_id not in self.resent:
                    assert applies[(0, image_id)] <= 1, f"{image_id} applied twice, untold"
        finally:
            with contextlib.suppress(Exception):
                self.run(self.client.aclose())
            self.run(self.server.close())
            self.loop.close()


FaultMix.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestFaultMix = FaultMix.TestCase
