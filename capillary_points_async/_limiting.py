"""Proactive rate limiting and the shared cooldown.

Capillary counts requests per API key per minute (API-NOTES.md, "Rate limits"); what it does
past the quota is undocumented, so the client must simply never get there. Two pieces:

* a bucket per endpoint key, sized so that no window of ``per`` seconds, the first one
  included, sees more than ``limit`` requests (:class:`RateLimit`), which after a 429 settles
  just under the quota the server turned out to have;
* a cooldown gate per endpoint key: after a 429 every request to that endpoint, including ones
  that start later, waits on the same gate until ``Retry-After`` has passed.

Both live behind the :class:`RateLimiter` protocol, so that a backend shared between processes
(Redis) can replace the in-process one through ``CapillaryClient(limiter=...)``. The bucket and
its adaptation to 429s are one algorithm for every backend, in ``_bucket.py``: the in-process
limiter calls it directly, the Redis limiter runs its Lua transcription.

What was kept of aiolimiter
---------------------------
Nothing at run time; the benchmark of the limiter still measures against it. The in-process
bucket used to subclass ``aiolimiter.AsyncLimiter``, and an adaptive rate needed its private
parts (``_rate_per_sec``, ``_leak``, ``_wake_next``, ``_loop``), since its public API fixes
the rate when the limiter is made. Through the public API alone a changed rate means a new
limiter, whose empty bucket would let a burst through on top of the old one's, and waiters
queued on the old one would keep the old rate. Its leaky bucket also decides when a waiter
wakes, where the Redis limiter has to hand out reservations (no process can wake another), so
the two could only approximate each other. A GCRA that reserves slots is a few lines, does
both, and lets one test prove that the two backends answer the same events the same way.
aiolimiter's habits are kept: slotted state, comments that say why, and no polling.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

import attrs

from ._bucket import ROUNDING_SLACK, Bucket
from ._validate import is_number, number, whole_number
from .errors import InvalidRequestError

__all__ = ["InProcessRateLimiter", "RateLimit", "RateLimiter"]


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
        ``limit + 1`` for ``w = per * (1 + safety_margin)`` gives at most ``limit`` per window
        (``limit + 1 - 0.01``: the small gap keeps float rounding of times harmless).
        """
        window = self.per * (1.0 + self.safety_margin)
        return (self.limit + 1 - ROUNDING_SLACK - self.burst) / window


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


class _EndpointState:
    __slots__ = ("bucket", "gate", "turn")

    def __init__(self) -> None:
        self.gate = _Gate()
        self.bucket: Bucket | None = None
        # Held by the caller waiting for the bucket's next slot; asyncio.Lock lets its waiters
        # in in arrival order.
        self.turn = asyncio.Lock()


class InProcessRateLimiter:
    """The default :class:`RateLimiter`: buckets and cooldown gates in this process.

    With ``adaptive`` (the default) a cooldown also lowers the endpoint's rate: a 429 although
    the proactive limit was respected means the server's quota is lower than configured, so the
    rate is set just under what the server accepted in the window before the 429 (cut to 70%
    when too few requests left to tell), held there, and probed upwards only rarely; the rule
    and its numbers are in ``_bucket.py``. The Redis limiter follows the same rule.

    Requests get their slots in arrival order. One that is cancelled while it waits takes no
    slot. A timer that fires late (a busy event loop) costs rate rather than sending the
    requests after it closer together, so the bound holds for the real departures.

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
        """Return when one request to ``key`` may be sent: after its cooldown, and with a
        token of its bucket unless ``limit`` is None. Waiters go in arrival order; a
        cancelled one takes no token."""
        state = self._state(key)
        gate = state.gate
        if limit is None:
            while gate.closed:
                await gate.wait()
            return
        loop = asyncio.get_running_loop()
        # One caller at a time reserves a slot and waits for it, the others queue on the lock:
        # so a cancelled caller can hand its slot back, and a late timer is seen by the bucket
        # (Bucket.left_at) before the next slot is given out.
        async with state.turn:
            while True:
                while gate.closed:
                    await gate.wait()
                bucket = state.bucket
                if bucket is None or bucket.limit is not limit:
                    bucket = state.bucket = Bucket(limit, adaptive=self._adaptive)
                now = _micros(loop.time())
                tat = bucket.tat
                slot = bucket.reserve(now)
                if slot == now:
                    return  # counted as a departure by reserve
                try:
                    await asyncio.sleep((slot - now) / 1e6)
                except asyncio.CancelledError:
                    bucket.tat = tat  # nobody has reserved since: the slot is free again
                    raise
                if not gate.closed:
                    bucket.left_at(_micros(loop.time()))
                    return
                # A cooldown began while this caller waited for its slot: the slot is given up
                # unsent (it stays spent, as with the Redis limiter) and the caller waits for
                # the cooldown's end, still first in line.

    async def cool_down(self, key: str, seconds: float) -> None:
        """Hold every request to ``key`` for ``seconds`` (never cutting a longer cooldown);
        when adaptive, also settle its rate at what the server accepted before the 429."""
        state = self._state(key)
        bucket = state.bucket
        if self._adaptive and bucket is not None:
            now = _micros(asyncio.get_running_loop().time())
            # The first 429 of a cooldown measures the quota; the others of the same burst
            # were requests that left before it and were not counted by the server.
            if state.gate.closed:
                bucket.reject(now)
            else:
                bucket.cut(now)
        state.gate.close_for(seconds)

    def effective_rate(self, key: str) -> float | None:
        """Requests per second the endpoint's bucket lets through, after any adaptive cut, as
        of its last request or 429 (None: no bucket yet)."""
        state = self._endpoints.get(key)
        if state is None or state.bucket is None:
            return None
        return state.bucket.limit.rate * state.bucket.factor

    async def aclose(self) -> None:
        """Cancel every endpoint's cooldown timer and open its gate, so that no waiter is
        left parked on a timer that will never fire."""
        for state in self._endpoints.values():
            state.gate.cancel()


def _micros(seconds: float) -> int:
    """A loop time in the whole microseconds the bucket counts in."""
    return round(seconds * 1e6)
