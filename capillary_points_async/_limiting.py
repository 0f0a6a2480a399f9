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
from collections import deque
from typing import Protocol, runtime_checkable

import attrs
from aiolimiter import AsyncLimiter

from ._validate import is_number, number, whole_number
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
        burst: the bucket's capacity: requests that may leave back to back after an idle
            spell; each one more lowers the steady rate by one request per window. With a
            single token every late timer wake-up of the event loop (up to about a millisecond)
            is rate lost for good, a third of it at 500/s, and a second token absorbs them. So
            the default is 2 where a millisecond per request costs more than one request per
            window (``limit * limit / per > 1000``: 1000/min, 100/s), else 1 (10/s).
        safety_margin: share of ``per`` added to the window the client enforces. The server
            counts arrivals, not departures: a connection handshake or a slow hop can bunch
            requests that left evenly spaced. With the default 0.02 the client never sends more
            than ``limit`` in any ``1.02 * per`` seconds, so arrivals bunched by up to
            ``0.02 * per`` still fit the server's window.
    """

    limit: int
    per: float = 60.0
    burst: int = attrs.field(
        default=attrs.Factory(lambda self: _default_burst(self.limit, self.per), takes_self=True),
        kw_only=True,
    )
    safety_margin: float = attrs.field(default=0.02, kw_only=True)

    def __attrs_post_init__(self) -> None:
        whole_number(self.limit, "RateLimit.limit")
        number(self.per, "RateLimit.per", unit="of seconds")
        whole_number(self.burst, "RateLimit.burst", maximum=self.limit)
        if not (is_number(self.safety_margin) and 0 <= self.safety_margin < 1):
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


def _default_burst(limit: object, per: object) -> int:
    if not (isinstance(limit, int) and is_number(per) and per > 0):  # type: ignore[operator]
        return 1  # the validators report what is wrong
    return 2 if limit >= 2 and limit * limit / per > 1000 else 1  # type: ignore[operator]


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


# Adaptation of the bucket after a 429, as shares of the configured rate and in windows of
# `per` seconds. The cut settles at 95% of what the server accepted: the requests this bucket
# let through in the window before the 429, which a gateway counting a sliding window
# answers 429 past exactly at its quota (so one 429 finds the quota, where a fixed 30% cut
# needs several and overshoots in between). With fewer than _MIN_COUNT requests to go by, the
# rate is cut to 70%. After 3 windows without a 429 it probes upwards,
# 1% of the settled rate in the first window, doubling each window (1%, 3%, 7%, 15%...): a
# quota that was met again is probed about every 6 windows, and one that was raised, or a cut
# that a passing 429 made too deep, is back to the configured rate within about 10.
_CUT = 0.7
_HEADROOM = 0.95
_MIN_COUNT = 10
_QUIET_WINDOWS = 3
_CREEP = 0.01
_FLOOR = 0.05
_RETUNE_STEP = 0.01


class _AdaptiveBucket(AsyncLimiter):
    """aiolimiter's bucket whose drain rate can be turned down after a 429 and up again.

    AsyncLimiter(max_rate, time_period) is a bucket of capacity max_rate draining at
    max_rate / time_period per second; time_period is picked for the drain rate that
    :class:`RateLimit` computes (a plain AsyncLimiter(limit, per) admits 2 * limit in its
    first window). It also remembers when its last ``limit`` tokens left, to measure the
    rate the server accepted when a 429 comes.
    """

    __slots__ = ("_cut_at", "_departures", "_settled", "factor", "limit")

    def __init__(self, limit: RateLimit) -> None:
        super().__init__(limit.burst, limit.burst / limit.rate)
        self.limit = limit
        self.factor = 1.0
        self._settled = 1.0
        self._cut_at = 0.0
        # No window holds more than `limit` departures, so this keeps every one of the last.
        self._departures: deque[float] = deque(maxlen=limit.limit)

    @property
    def rate(self) -> float:
        return self._rate_per_sec

    async def acquire(self, amount: float = 1) -> None:
        await super().acquire(amount)
        self._departures.append(self._loop.time())

    def _retune(self, factor: float) -> None:
        super()._leak()  # settle the level at the old rate before the new one applies
        self.factor = factor
        self._rate_per_sec = self.limit.rate * factor
        self.time_period = self.max_rate / self._rate_per_sec

    def _leak(self) -> None:
        # aiolimiter calls _leak before every decision, waiters' wake-ups included, so
        # recovery follows the clock even when no new request arrives.
        if self.factor < 1.0:
            self._recover(self._loop.time())
        super()._leak()

    def _recover(self, now: float) -> None:
        windows = (now - self._cut_at) / self.limit.per - _QUIET_WINDOWS
        if windows <= 0:
            return
        target = min(1.0, self._settled * (1.0 + _CREEP * (2.0 ** min(windows, 30.0) - 1.0)))
        if target >= 1.0 or target >= self.factor * (1.0 + _RETUNE_STEP):
            self._retune(target)

    def cut(self, now: float) -> None:
        departures = self._departures
        while departures and departures[0] <= now - self.limit.per:
            departures.popleft()
        if len(departures) >= _MIN_COUNT:
            accepted = len(departures) / self.limit.per
            target = min(self.factor, accepted * _HEADROOM / self.limit.rate)
        else:
            target = self.factor * _CUT
        self._settled = max(_FLOOR, target)
        self._cut_at = now
        self._retune(self._settled)
        self._wake_next()  # the next waiter's timer was set for the old rate


class _EndpointState:
    __slots__ = ("bucket", "gate")

    def __init__(self) -> None:
        self.gate = _Gate()
        self.bucket: _AdaptiveBucket | None = None


class InProcessRateLimiter:
    """The default :class:`RateLimiter`: aiolimiter buckets and cooldown gates in this process.

    With ``adaptive`` (the default) a cooldown also lowers the endpoint's rate: a 429 although
    the proactive limit was respected means the server's quota is lower than configured, so
    the rate is set just under what the server accepted in the window before the 429 (or cut
    to 70% without such a count), and after a few quiet windows probed slowly upwards again:
    the client converges on what the server accepts rather than producing a 429 storm.

    Correct for one process. Several processes sharing one API key each get the whole quota;
    use a shared backend for them.
    """

    __slots__ = ("_adaptive", "_endpoints")

    def __init__(self, *, adaptive: bool = True) -> None:
        self._adaptive = adaptive
        self._endpoints: dict[str, _EndpointState] = {}

    def _state(self, key: str) -> _EndpointState:
        state = self._endpoints.get(key)
        if state is None:
            state = self._endpoints[key] = _EndpointState()
        return state

    async def acquire(self, key: str, limit: RateLimit | None) -> None:
        state = self._state(key)
        gate = state.gate
        while True:
            if gate.closed:
                await gate.wait()
            if limit is not None:
                bucket = state.bucket
                if bucket is None or bucket.limit is not limit:
                    bucket = state.bucket = _AdaptiveBucket(limit)
                await bucket.acquire()
            # A cooldown may have begun while this request waited for its token; the token is
            # then spent unsent, which only errs on the side of the quota.
            if not gate.closed:
                return

    async def cool_down(self, key: str, seconds: float) -> None:
        state = self._state(key)
        # Answers to requests that left before this cooldown say nothing about the rate it
        # leads to: cut once per cooldown, not once per 429 of the same burst.
        if self._adaptive and state.bucket is not None and not state.gate.closed:
            state.bucket.cut(asyncio.get_running_loop().time())
        state.gate.close_for(seconds)

    def effective_rate(self, key: str) -> float | None:
        """Requests per second the endpoint's bucket lets through now (None: no bucket yet)."""
        state = self._endpoints.get(key)
        return state.bucket.rate if state is not None and state.bucket is not None else None

    async def aclose(self) -> None:
        for state in self._endpoints.values():
            state.gate.cancel()
