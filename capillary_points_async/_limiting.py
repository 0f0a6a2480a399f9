"""Proactive rate limiting and the shared cooldown.

Capillary counts requests per API key per minute (API-NOTES.md, "Rate limits"); what it does
past the quota is undocumented, so the client must simply never get there. Two pieces:

* a token bucket per endpoint key, sized so that no window of ``per`` seconds, the first one
  included, sees more than ``limit`` requests (:class:`RateLimit`);
* a cooldown gate per endpoint key: after a 429 every request to that endpoint, including ones
  that start later, waits on the same gate until ``Retry-After`` has passed.

Both live behind the :class:`RateLimiter` protocol, so that a backend shared between processes
(Redis) can replace the in-process one through ``CapillaryClient(limiter=...)``.
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol, runtime_checkable

import attrs
from aiolimiter import AsyncLimiter

from .errors import InvalidRequestError

__all__ = ["InProcessRateLimiter", "RateLimit", "RateLimiter"]

# How far below the next whole request the window bound is put. The bucket admits at most
# floor(burst + rate * window) requests in any window (see RateLimit.rate), so a bound just
# under limit + 1 is exact; the small gap keeps float rounding of loop times harmless.
_ROUNDING_SLACK = 0.01


@attrs.frozen
class RateLimit:
    """At most ``limit`` requests in any window of ``per`` seconds.

    Args:
        limit: requests allowed per window (Capillary documents 1000 per minute for the
            points endpoints, and 100 per minute on demo clusters).
        per: the window's length in seconds.
        burst: requests that may leave back to back after an idle spell. The default, 1,
            paces requests evenly; a larger burst lowers the steady rate by as much.
        safety_margin: share of ``per`` added to the window the client enforces. The server
            counts arrivals, not departures: a connection handshake or a slow hop can bunch
            requests that left evenly spaced. With the default 0.02 the client never sends more
            than ``limit`` in any ``1.02 * per`` seconds, so arrivals bunched by up to
            ``0.02 * per`` still fit the server's window.
    """

    limit: int
    per: float = 60.0
    burst: int = attrs.field(default=1, kw_only=True)
    safety_margin: float = attrs.field(default=0.02, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise InvalidRequestError(
                f"RateLimit.limit must be a whole number >= 1, got {self.limit!r}"
            )
        if not _positive_finite(self.per):
            raise InvalidRequestError(
                f"RateLimit.per must be a positive number of seconds, got {self.per!r}"
            )
        if (
            isinstance(self.burst, bool)
            or not isinstance(self.burst, int)
            or not 1 <= self.burst <= self.limit
        ):
            raise InvalidRequestError(
                f"RateLimit.burst must be a whole number from 1 to {self.limit}, got {self.burst!r}"
            )
        if not (isinstance(self.safety_margin, (int, float)) and 0 <= self.safety_margin < 1):
            raise InvalidRequestError(
                f"RateLimit.safety_margin must be in [0, 1), got {self.safety_margin!r}"
            )

    @property
    def rate(self) -> float:
        """The steady rate the bucket drains at, in requests per second.

        A leaky bucket of capacity ``burst`` draining at ``r`` admits at most
        ``floor(burst + r * w)`` requests in any window of ``w`` seconds: it can be full at the
        window's start and refills ``r * w`` during it. Making ``burst + r * w`` just less than
        ``limit + 1`` for ``w = per * (1 + safety_margin)`` gives at most ``limit`` per window.
        """
        window = self.per * (1.0 + self.safety_margin)
        return (self.limit + 1 - _ROUNDING_SLACK - self.burst) / window


def _positive_finite(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


@runtime_checkable
class RateLimiter(Protocol):
    """Where requests wait for their turn. Implement it to share a quota between processes.

    Keys are endpoint paths such as ``"v2/points/isTransferrable"``. Every call of the same
    key passes the same :class:`RateLimit` (or ``None`` when proactive limiting is off; the
    cooldown still applies then).
    """

    async def acquire(self, key: str, limit: RateLimit | None) -> None:
        """Return when one request to ``key`` may be sent: after any cooldown of ``key`` has
        passed and, unless ``limit`` is None, a token of its bucket has been taken."""

    async def cool_down(self, key: str, seconds: float) -> None:
        """Hold every request to ``key`` for ``seconds`` from now (the server's
        ``Retry-After``). A shorter cooldown never cuts a longer one that is running."""

    async def aclose(self) -> None:
        """Release what the limiter holds (connections, timers). Called when the client closes."""


class _Gate:
    """One endpoint's cooldown: a single event every waiter awaits, and a single timer that
    opens it, so a 429 storm costs one timer instead of a sleep per request."""

    __slots__ = ("_open", "_timer", "_until")

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._timer: asyncio.TimerHandle | None = None
        self._until = 0.0

    @property
    def closed(self) -> bool:
        return not self._open.is_set()

    def close_for(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        if until <= self._until and self.closed:
            return
        self._until = until
        self._open.clear()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(until, self._reopen)

    def _reopen(self) -> None:
        self._timer = None
        self._open.set()

    async def wait(self) -> None:
        await self._open.wait()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._open.set()


class InProcessRateLimiter:
    """The default :class:`RateLimiter`: aiolimiter buckets and cooldown gates in this process.

    Correct for one process. Several processes sharing one API key each get the whole quota;
    use a shared backend for them.
    """

    __slots__ = ("_buckets", "_gates")

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, RateLimit], AsyncLimiter] = {}
        self._gates: dict[str, _Gate] = {}

    def _bucket(self, key: str, limit: RateLimit) -> AsyncLimiter:
        bucket = self._buckets.get((key, limit))
        if bucket is None:
            # AsyncLimiter(max_rate, time_period) is a bucket of capacity max_rate draining at
            # max_rate / time_period per second; pick time_period to get our drain rate. A plain
            # AsyncLimiter(limit, per) would admit 2 * limit in its first window.
            bucket = AsyncLimiter(limit.burst, limit.burst / limit.rate)
            self._buckets[(key, limit)] = bucket
        return bucket

    async def acquire(self, key: str, limit: RateLimit | None) -> None:
        while True:
            gate = self._gates.get(key)
            if gate is not None and gate.closed:
                await gate.wait()
            if limit is not None:
                await self._bucket(key, limit).acquire()
            # A cooldown may have begun while this request waited for its token; the token is
            # then spent unsent, which only errs on the side of the quota.
            gate = self._gates.get(key)
            if gate is None or not gate.closed:
                return

    async def cool_down(self, key: str, seconds: float) -> None:
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = _Gate()
        gate.close_for(seconds)

    async def aclose(self) -> None:
        for gate in self._gates.values():
            gate.cancel()
