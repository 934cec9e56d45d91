"""The real servers the scale-out tests use answer on loopback."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis


async def test_postgres_answers(postgres_dsn: str) -> None:
    assert postgres_dsn.startswith("postgresql://") and "@127.0.0.1:" in postgres_dsn
    conn = await asyncpg.connect(postgres_dsn)
    try:
        assert await conn.fetchval("SELECT 40 + 2") == 42
    finally:
        await conn.close()


async def test_redis_answers(redis_url: str) -> None:
    assert redis_url.startswith("redis://127.0.0.1:")
    r = aioredis.from_url(redis_url)
    try:
        assert await r.ping()
        await r.set("wesog-services-check", "1")
        assert await r.get("wesog-services-check") == b"1"
    finally:
        await r.aclose()
