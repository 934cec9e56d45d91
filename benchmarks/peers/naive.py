"""P2: what a user writes in an afternoon.

``asyncio.gather`` over all batches at once (the input is materialized), one
``while not finished: await asyncio.sleep(1)`` loop per operation, stdlib
``json``, an ``aiohttp.ClientSession`` with its defaults. No retries.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from benchmarks.peers.base import (
    RUN_DEADLINE_S,
    Job,
    PeerResult,
    chunks,
    now,
    record,
    records,
    staggered_start,
)

_MAX_POLLS = 3600


async def p2(job: Job) -> PeerResult:
    result = PeerResult()
    headers = {"API-Key": job.api_key, "Content-Type": "application/json"}
    params = {"wait": "false", "strict": "false"}
    companion = asyncio.create_task(job.companion()) if job.companion else None
    submitted = 0

    async def write(
        session: aiohttp.ClientSession, path: str, body: Any, items: int, i: int = 0
    ) -> None:
        nonlocal submitted
        await staggered_start(job, i)
        async with session.post(
            job.url + path, data=json.dumps(body), headers=headers, params=params
        ) as resp:
            resp.raise_for_status()
            op = json.loads(await resp.text())
        result.ops += 1
        submitted += 1
        if submitted == expected and job.on_all_submitted is not None:
            await job.on_all_submitted()
        for _ in range(_MAX_POLLS):
            if op["is_finished"]:
                break
            await asyncio.sleep(1)
            result.polls += 1
            async with session.get(f"{job.url}/ops/{op['op_id']}", headers=headers) as resp:
                resp.raise_for_status()
                op = json.loads(await resp.text())
        result.observed[op["op_id"]] = now()
        result.records_good += op["num_good"]
        result.records_bad += op["num_bad"]

    try:
        async with asyncio.timeout(RUN_DEADLINE_S), aiohttp.ClientSession() as session:
            if job.kind == "bulk":
                batches = list(
                    chunks(records(job.n_records, job.prefix, wide=job.wide), job.batch_size)
                )
                expected = len(batches)
                await asyncio.gather(*(write(session, "/imgs", b, len(b)) for b in batches))
            else:
                bodies = [record(i, job.prefix) for i in range(job.n_records)]
                expected = len(bodies)
                await asyncio.gather(
                    *(write(session, f"/imgs/{b.pop('id')}", b, 1, i) for i, b in enumerate(bodies))
                )
    finally:
        if companion is not None:
            companion.cancel()
            await asyncio.gather(companion, return_exceptions=True)
    return result
