"""P3: the P0 loop over httpx instead of aiohttp (informative; optional peer)."""

from __future__ import annotations

from typing import Any

from benchmarks.peers.base import Job, PeerResult
from benchmarks.peers.raw import CONNECTIONS, RawPeer, Reply


def httpx_available() -> bool:
    try:
        import httpx  # noqa: F401
    except ImportError:
        return False
    return True


class HttpxTransport:
    """The P3 transport: one ``httpx.AsyncClient``."""

    def __init__(self, url: str, api_key: str, *, limit: int) -> None:
        import httpx

        self.errors: tuple[type[BaseException], ...] = (httpx.TransportError, OSError)
        self._client: Any = httpx.AsyncClient(
            base_url=url,
            headers={"API-Key": api_key, "Content-Type": "application/json"},
            limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
            timeout=60.0,
        )

    async def request(
        self, method: str, path: str, params: dict[str, str] | None, body: bytes | None
    ) -> Reply:
        resp = await self._client.request(method, path, params=params, content=body)
        return resp.status_code, resp.content, resp.headers.get("Retry-After")

    async def aclose(self) -> None:
        await self._client.aclose()


async def p3(job: Job) -> PeerResult:
    """P0 over httpx."""
    return await RawPeer(job, HttpxTransport(job.url, job.api_key, limit=CONNECTIONS)).run()
