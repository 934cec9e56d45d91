"""What one failed HTTP attempt means: one table, no I/O, no clock.

Every part of the client that must decide "was this attempt possibly applied by
the server?" or "may it be sent again?" asks this module, so the request path,
the poller, single writes and bulk ingestion cannot disagree.

==============================  ==============  ======================  =========
failure of the attempt          maybe applied?  read / poll retried?    write retried?
==============================  ==============  ======================  =========
never sent (pool wait, connect)  no             yes                     yes (strict too)
408, 429, 503                    no             yes                     yes (strict too)
500, 502, 504, other 5xx         yes (writes)   yes                     non-strict only
reset / read timeout after send  yes (writes)   yes                     non-strict only
other 4xx                        no             no                      no
==============================  ==============  ======================  =========

A read or a poll changes nothing on the server, so "maybe applied" only ever
matters for writes. A ``Retry-After`` above the policy's cap is never waited for
(the retry policy checks that on top of this table).
"""

from __future__ import annotations

from typing import Final, Literal

from wesog_async._errors import APIStatusError, ConnectError, TransportError

#: What a request is, for retries: a write that may be resent after an ambiguous
#: failure (non-strict), one that may not (strict), or a read / status poll.
RequestKind = Literal["read", "poll", "write", "strict_write"]

#: Statuses after which the server certainly did not act on the request.
NOT_APPLIED_STATUSES: Final = frozenset({408, 429, 503})


def status_maybe_applied(status: int) -> bool:
    """Whether a write answered with ``status`` may have been applied."""
    if 200 <= status < 300:
        return True
    return status >= 500 and status not in NOT_APPLIED_STATUSES


def status_retryable(kind: RequestKind, status: int) -> bool:
    """Whether an attempt of ``kind`` answered with error ``status`` may be retried."""
    if status in NOT_APPLIED_STATUSES:
        return True
    if status < 500:
        return False
    # 5xx other than 503: a read or a non-strict write is safe to send again.
    return kind != "strict_write"


def maybe_applied(exc: BaseException) -> bool:
    """Whether the failed write attempt that raised ``exc`` may have been applied."""
    if isinstance(exc, APIStatusError):
        return status_maybe_applied(exc.status)
    if isinstance(exc, ConnectError):
        return False
    return isinstance(exc, TransportError)


def retryable(kind: RequestKind, exc: BaseException) -> bool:
    """Whether an attempt of ``kind`` that raised ``exc`` may be retried
    (before the policy's attempt, budget and ``Retry-After`` cap checks)."""
    if isinstance(exc, APIStatusError):
        return status_retryable(kind, exc.status)
    if isinstance(exc, ConnectError):
        return True
    if isinstance(exc, TransportError):
        return kind != "strict_write"
    return False


def kind_of(method: str, *, resend_safe: bool) -> RequestKind:
    """The retry kind of a request by its method and whether it may be resent."""
    if method == "GET":
        return "read"
    return "write" if resend_safe else "strict_write"


__all__ = [
    "NOT_APPLIED_STATUSES",
    "RequestKind",
    "kind_of",
    "maybe_applied",
    "retryable",
    "status_maybe_applied",
    "status_retryable",
]
