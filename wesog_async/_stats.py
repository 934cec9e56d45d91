"""The counters of one client (see :meth:`WesogClient.stats`).

Each part of the client increments the counters of what it does: the transport
requests, retries and throttles; the submitter submissions; the poller polls
and finished operations. Nothing reads them to make a decision.
"""

from __future__ import annotations

import attrs


@attrs.define
class ClientStats:
    """Counters of one client."""

    requests: int = 0
    retries: int = 0
    throttles: int = 0
    submitted: int = 0
    finished: int = 0
    items_good: int = 0
    items_bad: int = 0
    polls: int = 0
    poll_retries: int = 0
    ambiguous_resends: int = 0


__all__ = ["ClientStats"]
