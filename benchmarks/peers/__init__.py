"""The peers compared in every workload, by name.

| name       | what                                                           | loop    |
|------------|----------------------------------------------------------------|---------|
| P0         | raw aiohttp + orjson, bounded batch queue, fixed poll schedule | asyncio |
| P0-oracle  | P0 polling once per operation at its known finish time         | asyncio |
| P1         | wesog_async, default settings                                  | asyncio |
| P1-uvloop  | P1 on uvloop (reported apart)                                  | uvloop  |
| P2         | naive: gather everything, ``sleep(1)`` polling, stdlib json    | asyncio |
| P3         | P0 over httpx (informative, skipped when httpx is missing)     | asyncio |
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from benchmarks.peers.base import Job, Peer, PeerResult
from benchmarks.peers.httpx_peer import httpx_available, p3
from benchmarks.peers.naive import p2
from benchmarks.peers.raw import p0, p0_oracle
from benchmarks.peers.wesog import bulk_available, p1


def _uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _always() -> bool:
    return True


@attrs.frozen
class PeerSpec:
    name: str
    run: Peer
    uvloop: bool = False
    available: Callable[[], bool] = _always
    why_unavailable: str = ""


PEERS: dict[str, PeerSpec] = {
    spec.name: spec
    for spec in (
        PeerSpec("P0", p0),
        PeerSpec("P0-oracle", p0_oracle),
        PeerSpec("P1", p1),
        PeerSpec(
            "P1-uvloop",
            p1,
            uvloop=True,
            available=_uvloop_available,
            why_unavailable="uvloop is not installed",
        ),
        PeerSpec("P2", p2),
        PeerSpec(
            "P3",
            p3,
            available=httpx_available,
            why_unavailable="httpx is not installed (optional peer)",
        ),
    )
}

__all__ = ["PEERS", "Job", "PeerResult", "PeerSpec", "bulk_available"]
