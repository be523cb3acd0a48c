"""When the client sends a request again, and how long it waits first.

Only what cannot do harm twice is repeated: a request that never reached the service (connection refused, a host
name that does not resolve), and, for calls that are safe to repeat (reads, inference, a conditional parameters
update, a deletion), a 503 or 429, and a 502, whose ``Retry-After`` is honoured: never sooner than it asks, and not
at all when it asks for longer than ``max_wait_s``; without one, a jittered exponential backoff.

A 502 (Bad Gateway) is never the service's own answer (nothing in ``app/`` sends one, and an unexpected error there
is a 500): it comes from a load balancer or proxy in front of it that got no valid answer from a replica. Behind
an AWS ALB (``infra/``), that is a replica that refused, closed or reset the connection while a deploy or a scale-in
stopped it. It is the gateway's word for a dropped connection (``DROPPED``) and is treated as one: the request
may have reached the replica before it went, so only a call safe to repeat is sent again; an enrolment or added
faces are not (whether they were saved is not known: check ``GET /identities`` first, as after a 504). And only
once, after the first attempt: a request that itself brings a replica down (its memory, a crash in a native
library) looks the same from here, and would take ``retries`` more replicas with it. A parameters update that a
502 interrupted may have been applied: its retry then answers 409 (stale ``If-Match``), and ``GET
/admin/params`` says whether the change is there.

A 504 (Gateway Timeout) is never retried, nor is the client's own timeout: the request reached the service, which
was still working on it when the gateway (after its idle timeout, 60 s on the ALB) or the client stopped waiting,
and may be still. A painting with ``method=nst`` runs up to 55 s; sent again, it would run a second time beside the
first (most likely to time out again, and on a replica whose NST queue the first still holds), so a busy service
gets busier. The caller decides (``OutcomeUnknown``). Nor is what would fail the same way again: a TLS certificate
that does not verify, or TLS spoken to a port that does not speak it.
"""

from __future__ import annotations

import random
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

# 429: a rate limit; 503: the service is busy, starting or shutting down; 502: a gateway in front of it got no valid
# answer from a replica (a dropped connection, seen from behind the gateway). 504 is not here: see above.
RETRY_STATUSES = frozenset({429, 502, 503})
# Failures that prove the request was never sent, so even a call that is not safe to repeat may be. A host name
# that does not resolve is a ConnectError too, and is retried on purpose: in docker compose a service's name resolves
# only once its container runs, so a client started beside it sees that briefly, and a resolver's own failure
# (EAI_AGAIN) passes. A misspelt name cannot be told apart from those; it costs the ``retries`` backoffs before it
# is raised (with the defaults, 3 waits of at most 0.5, 1 and 2 s), which bounds it.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# The service closed a kept-alive connection as we reused it: safe to repeat for repeatable calls only.
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def may_have_arrived(outcome: httpx.Response | BaseException) -> bool:
    """Whether a failed attempt may still have been applied: its connection dropped after the request was sent, or
    a gateway answered 502 for a replica that went (the request may have reached it)."""
    if isinstance(outcome, httpx.Response):
        return outcome.status_code == 502
    return isinstance(outcome, DROPPED)


# TLS failures that are the connection being cut mid-handshake (a restart, a load balancer), not a misconfiguration.
TLS_CUT = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


def tls_failure(error: BaseException) -> ssl.SSLError | None:
    """The TLS error behind ``error`` (httpx wraps httpcore's, which wraps ssl's) when it would fail the same way
    again: a certificate that does not verify, a handshake or protocol mismatch; None otherwise."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError) and not isinstance(seen, TLS_CUT):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3
    backoff_s: float = 0.5
    max_wait_s: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter, so clients turned away together do not come back together."""
        return min(self.max_wait_s, self.backoff_s * 2**attempt * random.uniform(0.5, 1.0))

    def too_long(self, attempt: int, status: int, retry_after: float | None, repeatable: bool) -> bool:
        """Whether the service asks a call the policy would otherwise repeat (a retry left after attempt ``attempt``)
        to wait longer than ``max_wait_s``: it is not sent sooner than asked, so the caller gets the error at once,
        to schedule the call itself. False when no retry was left anyway: the wait is not why it was not repeated."""
        asks_long = retry_after is not None and retry_after > self.max_wait_s
        return asks_long and self.would_retry(attempt, status, repeatable)

    def would_retry(self, attempt: int, status: int, repeatable: bool) -> bool:
        """Whether an answer of ``status`` to attempt ``attempt`` (0: the first) is one to send the call again after.
        A 502 only after the first attempt: a request that itself brings its replica down would otherwise be sent
        to ``retries`` more of them (the load balancer cannot tell that apart from a replica a deploy stopped)."""
        if attempt >= self.retries or not repeatable or status not in RETRY_STATUSES:
            return False
        return status != 502 or attempt == 0

    def after_response(self, attempt: int, status: int, retry_after: float | None, repeatable: bool) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up and raise."""
        if not self.would_retry(attempt, status, repeatable):
            return None
        if retry_after is None:
            return self.backoff(attempt)
        return None if self.too_long(attempt, status, retry_after, repeatable) else retry_after

    def after_error(self, attempt: int, error: httpx.TransportError, repeatable: bool) -> float | None:
        if attempt >= self.retries or tls_failure(error) is not None:
            return None
        if isinstance(error, NOT_SENT) or (repeatable and isinstance(error, DROPPED)):
            return self.backoff(attempt)
        return None
