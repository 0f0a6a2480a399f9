"""One rate algorithm for every backend: the Redis limiter's Lua answers every event exactly
as the in-process limiter's :class:`~capillary_points_async._bucket.Bucket` does.

Both sides are fed the same events at the same (simulated) times: a client that always has a
request ready, against a gateway that admits ``QUOTA`` per second over a sliding window and
answers ``RTT`` after each request left. The Python side is a ``Bucket`` with the cooldown kept
as a deadline (as ``InProcessRateLimiter`` keeps it in its gate); the Redis side runs the very
scripts ``RedisRateLimiter`` runs, on a real redis-server, with the script's clock replaced by
the simulated one. Every slot, every factor and every stored adaptation must agree.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

pytest.importorskip("redis", reason="redis-py is missing: pip install -e '.[redis]'")

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

import capillary_points_async.redis as redis_module
from capillary_points_async import RateLimit
from capillary_points_async._bucket import SUBWINDOWS, Bucket, interval_us, window_us
from capillary_points_async.testing import RateLimitRule
from capillary_points_async.testing._traffic import SlidingWindow

SECOND = 1_000_000
# The scripts' clock, the last argument; and expiries left out, since they run on the Redis
# server's real clock, which the simulated one outruns. (The rule does not depend on them: an
# adaptation runs out at its 'expires' field, the bucket's tat is read as max(tat, now).)
SIMULATED = """
local server = redis
local redis = setmetatable({call = function(command, ...)
    local args = {...}
    if command == 'PEXPIRE' then
        return 1
    end
    if command == 'SET' then
        return server.call('SET', args[1], args[2])
    end
    return server.call(command, ...)
end}, {__index = server})
"""
NOW = "tonumber(ARGV[#ARGV])"


@dataclass
class Mirror:
    """The same endpoint in Python and in Redis, fed event by event."""

    limit: RateLimit
    client: Redis
    keys: tuple[str, str, str, str]
    acquire: AsyncScript
    cool_down: AsyncScript
    bucket: Bucket = field(init=False)
    cooling_until: int = 0
    seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.bucket = Bucket(self.limit)

    async def reserve(self, now: int) -> int | None:
        """The next slot, or None during a cooldown (the in-process limiter's gate)."""
        status, wait, _, factor = await self.acquire(
            keys=self.keys,
            args=(interval_us(self.limit), self.limit.burst, -1, window_us(self.limit), 0, now),
        )
        if self.cooling_until > now:
            assert (status, wait) == (0, self.cooling_until - now)
            return None
        slot = self.bucket.reserve(now)
        assert (status, now + wait) == (1, slot)
        assert float(factor) == self.bucket.factor
        if self.bucket.factor < 1:
            self.seen.add("probing" if self.bucket.factor > self._settled() else "held")
        return slot

    async def depart(self, slot: int) -> bool:
        """The check before a slot: False if a cooldown began meanwhile (slot given up)."""
        status, *_ = await self.acquire(
            keys=self.keys, args=(0, 0, -1, window_us(self.limit), slot, slot)
        )
        leaves = self.cooling_until <= slot
        assert status == (1 if leaves else 0)
        if leaves:
            self.bucket.depart(slot)
        return leaves

    async def answer_429(self, now: int, retry_after: int) -> None:
        if self.cooling_until <= now:
            self.bucket.cut(now)
            adaptation = self.bucket.adaptation
            assert adaptation is not None
            self.seen.add("blind cut" if adaptation.quota < 0 else f"hold {adaptation.hold:g}")
        else:
            self.bucket.reject(now)
            self.seen.add("reject")
        self.cooling_until = max(self.cooling_until, now + retry_after)
        limit = self.limit
        await self.cool_down(
            keys=self.keys, args=(retry_after, window_us(limit), limit.limit, limit.burst, now)
        )
        await self.compare_adaptations(now)

    async def compare_adaptations(self, now: int) -> None:
        self.bucket.factor_at(now)  # drops one that has run out, as the Lua reads 'expires'
        adaptation = self.bucket.adaptation
        stored = await self.client.hgetall(self.keys[2])
        if adaptation is None:
            assert not stored or float(stored[b"expires"]) <= now
            return
        assert {name.decode(): float(value) for name, value in stored.items()} == {
            "at": adaptation.at,
            "settled": adaptation.settled,
            "hold": adaptation.hold,
            "quota": adaptation.quota,
            "expires": adaptation.expires,
        }
        # The departures' hash stays bounded: the sub-windows of one window, and one more.
        assert await self.client.hlen(self.keys[3]) <= SUBWINDOWS + 2

    def _settled(self) -> float:
        adaptation = self.bucket.adaptation
        return 1.0 if adaptation is None else adaptation.settled


@pytest.fixture
async def mirror(redis_client: Redis, namespace: str) -> AsyncIterator[Any]:
    scripts = {
        name: redis_client.register_script(SIMULATED + redis_module._script(body, NOW))
        for name, body in (
            ("acquire", redis_module._ACQUIRE_BODY),
            ("cool_down", redis_module._COOL_DOWN_BODY),
        )
    }
    tag = f"test:{{{namespace}}}"
    keys = (f"{tag}:cooldown", f"{tag}:tat", f"{tag}:adapt", f"{tag}:departures")

    def make(limit: RateLimit) -> Mirror:
        return Mirror(limit, redis_client, keys, scripts["acquire"], scripts["cool_down"])

    try:
        yield make
    finally:
        await redis_client.delete(*keys)


async def run(
    mirror: Mirror, quota: int, seconds: float, *, every: int = 0, rtt: int = 5_000
) -> list[int]:
    """A client that sends as fast as the bucket lets it (or at most one request per
    ``every`` us) against a gateway of ``quota`` per second; returns the 429s' times."""
    gateway = SlidingWindow(RateLimitRule(quota, 1.0))
    start = 1_700_000_000 * SECOND  # a Redis server's clock, to the microsecond
    end = start + round(seconds * SECOND)
    events: list[tuple[int, int, str, int]] = []  # (when, order, what, slot)
    order = itertools.count()
    heapq.heappush(events, (start, next(order), "reserve", 0))
    throttled = []
    while events:
        now, _, what, slot = heapq.heappop(events)
        if what == "reserve" and now < end:
            reserved = await mirror.reserve(now)
            if reserved is None:
                heapq.heappush(events, (mirror.cooling_until, next(order), "reserve", 0))
                continue
            slot = reserved
            if slot == now:
                heapq.heappush(events, (now, next(order), "arrive", slot))
            else:
                heapq.heappush(events, (slot, next(order), "check", slot))
            heapq.heappush(events, (max(slot, now + every), next(order), "reserve", 0))
        elif what == "check":
            if await mirror.depart(slot):
                heapq.heappush(events, (now, next(order), "arrive", slot))
        elif what == "arrive":
            retry_after = gateway.admit(now / SECOND)
            if retry_after is not None:
                heapq.heappush(events, (now + rtt, next(order), "429", retry_after * SECOND))
        elif what == "429":
            throttled.append(now)
            await mirror.answer_429(now, slot)
    return throttled


async def test_both_backends_adapt_alike_to_a_quota_below_the_limit(mirror: Any) -> None:
    # Told 60 per second, the gateway admits 20: the measured cut and its 429s, the hold of
    # 30 windows, the probe, a second cut that finds the same quota and doubles the hold.
    endpoint: Mirror = mirror(RateLimit(60, per=1.0))
    # Answers take 40 ms, so that requests already on their way meet 429s too.
    throttled = await run(endpoint, quota=20, seconds=75, rtt=40_000)
    assert {"hold 30", "reject", "held", "probing", "hold 60"} <= endpoint.seen
    # Settled under the quota, by the burst and margin as RateLimit(20, per=1) is, and by what
    # left in the 40 ms before the 429 came back (the count errs low, never high).
    assert len(throttled) < 10
    settled = endpoint.limit.rate * endpoint.bucket.factor
    assert 0.9 * RateLimit(20, per=1.0, burst=2).rate <= settled < 20


async def test_both_backends_adapt_alike_to_a_blind_cut_and_recover(mirror: Any) -> None:
    # Three requests a second, a 429 with too few to measure: 70%, then back to the configured
    # rate, where the adaptation runs out on both sides.
    endpoint: Mirror = mirror(RateLimit(60, per=1.0))
    await run(endpoint, quota=2, seconds=2, every=SECOND // 3)
    assert "blind cut" in endpoint.seen
    later = 1_700_000_000 * SECOND + 30 * SECOND
    await endpoint.reserve(later)
    assert endpoint.bucket.factor == 1.0
    await endpoint.compare_adaptations(later)
    assert math.isclose(endpoint.limit.rate * endpoint.bucket.factor, endpoint.limit.rate)
