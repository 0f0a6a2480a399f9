"""RedisRateLimiter against a real redis-server (see conftest.py).

Grants are checked in the Redis server's own time: the acquire script returns the server clock
with every reservation, so the schedule the limiter hands out can be verified exactly, without
depending on how promptly a loaded machine wakes the sleepers. Real elapsed time is only ever
used as a lower bound (a slow machine can only make it longer) or with a very generous ceiling.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

pytest.importorskip("redis", reason="redis-py is missing: pip install -e '.[redis]'")

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError

import capillary_points_async.redis as redis_module
from capillary_points_async import (
    CapillaryError,
    InProcessRateLimiter,
    InvalidRequestError,
    RateLimit,
    RateLimiter,
)
from capillary_points_async.redis import (
    RateLimiterTimeoutError,
    RateLimiterUnavailableError,
    RedisRateLimiter,
)

from .._clock import virtual_time
from .redis_helpers import RedisServer, free_port

KEY = "v2/points/isTransferrable"
OTHER_KEY = "v1.1/points/validationcode"
SECRET = "s3cret-pw"


class RecordingLimiter(RedisRateLimiter):
    """Records every slot it is granted (server time, microseconds), every script call that
    failed, and every wait, and can run a hook at the start of a wait, so that tests can act
    "while a caller sleeps" without sleeping themselves."""

    __slots__ = ("failures", "grants", "on_sleep", "reservations", "sleeps")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.grants: list[int] = []
        self.reservations: list[tuple[int, int]] = []  # (server time of the call, slot)
        self.failures = 0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[float], Awaitable[None]] | None = None

    async def _eval(self, script: AsyncScript, keys: Sequence[str], args: Sequence[int]) -> Any:
        try:
            reply = await super()._eval(script, keys, args)
        except Exception:
            self.failures += 1
            raise
        if script is self._acquire_script and args[0] > 0 and reply[0] == 1:
            wait, now = int(reply[1]), int(reply[2])
            self.grants.append(now + wait)
            self.reservations.append((now, now + wait))
        return reply

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.on_sleep is not None:
            await self.on_sleep(seconds)
        await super()._sleep(seconds)


def recording(server: RedisServer, namespace: str, **kwargs: Any) -> RecordingLimiter:
    """A recording limiter with its own client, as a separate process would have."""
    client = Redis(host=server.host, port=server.port, socket_timeout=5)
    limiter = RecordingLimiter(client, namespace=namespace, **kwargs)
    limiter_owns(limiter)
    return limiter


def recording_from_url(url: str, **kwargs: Any) -> RecordingLimiter:
    """A recording limiter with a client as :meth:`RedisRateLimiter.from_url` builds it (it
    retries a failed connection once, quickly, where redis-py's default retries for seconds)."""
    limiter = RecordingLimiter.from_url(url, **kwargs)
    assert isinstance(limiter, RecordingLimiter)
    return limiter


def limiter_owns(limiter: RedisRateLimiter) -> None:
    # Tests build limiters around their own clients; let aclose() close them too.
    limiter._owns_client = True


def interval_us(limit: RateLimit) -> int:
    return math.ceil(1e6 / limit.rate)


def max_in_window(grants: Sequence[int], window_us: float) -> int:
    """The most grants in any closed window [t, t + window_us]."""
    ordered = sorted(grants)
    most, start = 0, 0
    for end, grant in enumerate(ordered):
        while grant - ordered[start] > window_us:
            start += 1
        most = max(most, end - start + 1)
    return most


@pytest.fixture
async def limiters(
    redis_server: RedisServer, namespace: str
) -> AsyncIterator[list[RecordingLimiter]]:
    """Three limiters of one namespace, each with its own Redis client ("three processes")."""
    made = [recording(redis_server, namespace) for _ in range(3)]
    try:
        yield made
    finally:
        for limiter in made:
            await limiter.aclose()


async def test_is_a_rate_limiter(redis_server: RedisServer, namespace: str) -> None:
    limiter = RedisRateLimiter.from_url(redis_server.url, namespace=namespace)
    try:
        assert isinstance(limiter, RateLimiter)
    finally:
        await limiter.aclose()


@pytest.mark.parametrize(
    "limit",
    [
        RateLimit(20, per=0.5, safety_margin=0),
        RateLimit(20, per=0.5),
        RateLimit(20, per=0.5, burst=5, safety_margin=0),
    ],
    ids=["tight", "default-margin", "burst-5"],
)
async def test_no_window_exceeds_the_limit_across_processes(
    limiters: list[RecordingLimiter], limit: RateLimit
) -> None:
    requests = 50
    started = time.monotonic()
    await asyncio.gather(
        *(limiters[i % len(limiters)].acquire(KEY, limit) for i in range(requests))
    )
    elapsed = time.monotonic() - started

    grants = [grant for limiter in limiters for grant in limiter.grants]
    assert len(grants) == requests
    window_us = limit.per * (1 + limit.safety_margin) * 1e6
    # Never more than the limit in the enforced window, and exactly the limit when saturated:
    # the bucket is neither too loose nor needlessly strict.
    assert max_in_window(grants, window_us) == limit.limit
    assert max_in_window(grants, limit.per * 1e6) <= limit.limit
    # The bucket's own law: any burst + 1 consecutive grants span at least one drain interval
    # (at most `burst` leave back to back, then they are spaced).
    ordered = sorted(grants)
    burst = limit.burst
    assert all(
        later - earlier >= interval_us(limit)
        for earlier, later in zip(ordered, ordered[burst:], strict=False)
    )
    # Callers really waited for their slots (a lower bound, which load cannot break).
    first_call = min(now for limiter in limiters for now, _ in limiter.reservations)
    assert elapsed >= (ordered[-1] - first_call) / 1e6 - 0.001


async def test_burst_leaves_back_to_back(limiters: list[RecordingLimiter]) -> None:
    limit = RateLimit(10, per=1.0, burst=4)
    limiter = limiters[0]
    for _ in range(4):
        await limiter.acquire(KEY, limit)
    assert limiter.sleeps == []
    await limiter.acquire(KEY, limit)
    # The fifth waits for its slot (in two parts: up to the cooldown's last check, then the rest).
    assert 0 < sum(limiter.sleeps) <= interval_us(limit) / 1e6


async def test_slots_are_handed_out_in_arrival_order(limiters: list[RecordingLimiter]) -> None:
    limit = RateLimit(100, per=1.0, safety_margin=0)
    await asyncio.gather(*(limiters[i % 3].acquire(KEY, limit) for i in range(30)))
    reservations = sorted(r for limiter in limiters for r in limiter.reservations)
    slots = [slot for _, slot in reservations]
    # First come, first served across processes, and nobody waits more than the queue ahead.
    assert slots == sorted(slots)
    for position, (now, slot) in enumerate(reservations):
        assert slot - now <= position * interval_us(limit)


async def test_cooldown_is_shared_between_processes(
    limiters: list[RecordingLimiter],
) -> None:
    first, second, _ = limiters
    started = time.monotonic()  # before the cooldown starts, so a lower bound on its end
    await first.cool_down(KEY, 0.3)
    await second.acquire(KEY, RateLimit(100, per=1.0))
    assert time.monotonic() - started >= 0.299  # 1 ms for clock slewing
    assert len(second.sleeps) == 1
    assert 0 < second.sleeps[0] <= 0.3
    # Other endpoints are not held.
    await second.acquire(OTHER_KEY, RateLimit(100, per=1.0))
    assert len(second.sleeps) == 1


async def test_cooldown_holds_requests_without_a_limit(limiters: list[RecordingLimiter]) -> None:
    first, second, _ = limiters
    started = time.monotonic()
    await first.cool_down(KEY, 0.2)
    await second.acquire(KEY, None)
    assert time.monotonic() - started >= 0.199
    assert len(second.sleeps) == 1
    assert 0 < second.sleeps[0] <= 0.2


async def test_shorter_cooldown_never_cuts_a_longer_one(
    limiters: list[RecordingLimiter], redis_client: Redis
) -> None:
    first, second, _ = limiters
    cooldown_key = first._keys_for(KEY)[0]
    await first.cool_down(KEY, 30)
    await second.cool_down(KEY, 0.1)
    assert await redis_client.pttl(cooldown_key) > 20_000
    await second.cool_down(KEY, 60)
    assert await redis_client.pttl(cooldown_key) > 50_000


async def test_a_cooldown_starting_during_a_wait_requeues_the_caller(
    limiters: list[RecordingLimiter],
) -> None:
    first, second, _ = limiters
    limit = RateLimit(4, per=1.0, burst=1, safety_margin=0)  # one slot every ~0.25 s

    async def rate_limited_meanwhile(seconds: float) -> None:
        if len(second.sleeps) == 1:  # the wait for the reserved slot has begun
            await first.cool_down(KEY, 0.5)

    second.on_sleep = rate_limited_meanwhile
    await second.acquire(KEY, limit)  # immediate
    started = time.monotonic()
    await second.acquire(KEY, limit)  # reserves a slot, then the cooldown begins
    assert time.monotonic() - started >= 0.499
    # The wait for the slot, then the rest of the cooldown (not the last few milliseconds up
    # to the slot): the slot was given up rather than used inside the cooldown.
    assert len(second.sleeps) >= 2
    assert second.sleeps[1] > redis_module._RECHECK_LEAD


async def test_namespaces_are_isolated(
    redis_server: RedisServer, namespace: str, redis_client: Redis
) -> None:
    one = recording(redis_server, namespace)
    two = recording(redis_server, namespace + "-other")
    try:
        limit = RateLimit(1, per=60.0)
        await one.acquire(KEY, limit)
        await one.cool_down(KEY, 30)
        await two.acquire(KEY, limit)
        assert two.sleeps == []
        assert set(one._keys_for(KEY)).isdisjoint(two._keys_for(KEY))
        for key in one._keys_for(KEY):
            assert one.namespace in key
            assert await redis_client.exists(key)
    finally:
        await one.aclose()
        await two.aclose()


async def test_keys_expire_with_their_horizon(
    limiters: list[RecordingLimiter], redis_client: Redis, namespace: str
) -> None:
    limiter = limiters[0]
    limit = RateLimit(10, per=1.0)  # ~98 ms between slots
    cooldown_key, tat_key, adapt_key, departures_key = limiter._keys_for(KEY)
    await limiter.acquire(KEY, limit)
    assert 0 < await redis_client.pttl(tat_key) <= math.ceil(interval_us(limit) / 1000)
    # Three more reservations, not waited for: the horizon is four intervals away now.
    tasks = [asyncio.create_task(limiter.acquire(KEY, limit)) for _ in range(3)]
    try:
        while len(limiter.grants) < 4:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        assert 0 < await redis_client.pttl(tat_key) <= math.ceil(4 * interval_us(limit) / 1000)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    # One departure so far (the first caller; the others never reached their slot), kept for
    # a window and two sub-windows of 50 ms.
    assert 0 < await redis_client.pttl(departures_key) <= 1_100
    await limiter.cool_down(KEY, 2.5)
    assert 2000 < await redis_client.pttl(cooldown_key) <= 2500
    # Too few departures to measure: a blind cut to 70%, which lasts until the rate is back:
    # 3 windows of hold, then log2(1 + (1 / 0.7 - 1) / 0.01) = 5.45 of probing, of 1 s each.
    assert 8_000 < await redis_client.pttl(adapt_key) <= 8_455
    # Nothing this limiter wrote lives forever.
    keys = [key async for key in redis_client.scan_iter(match=f"*{namespace}*")]
    assert sorted(keys) == sorted(key.encode() for key in limiter._keys_for(KEY))
    for key in keys:
        assert await redis_client.pttl(key) > 0


async def test_acquire_without_a_limit_writes_no_bucket(
    limiters: list[RecordingLimiter], redis_client: Redis
) -> None:
    limiter = limiters[0]
    await limiter.acquire(KEY, None)
    assert limiter.sleeps == []
    assert not await redis_client.exists(*limiter._keys_for(KEY))


async def test_survives_a_script_cache_flush(
    limiters: list[RecordingLimiter], redis_client: Redis
) -> None:
    limiter = limiters[0]
    await limiter.acquire(KEY, RateLimit(100, per=1.0))
    await redis_client.script_flush()  # as after a Redis restart or failover
    await limiter.acquire(KEY, RateLimit(100, per=1.0))
    await limiter.cool_down(KEY, 0.01)
    assert len(limiter.grants) == 2


async def test_a_cancelled_waiter_loses_its_slot(limiters: list[RecordingLimiter]) -> None:
    limiter = limiters[0]
    limit = RateLimit(10, per=1.0)
    sleeping = asyncio.Event()

    async def note(seconds: float) -> None:
        sleeping.set()

    limiter.on_sleep = note
    await limiter.acquire(KEY, limit)
    waiter = asyncio.create_task(limiter.acquire(KEY, limit))
    await sleeping.wait()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    third = asyncio.create_task(limiter.acquire(KEY, limit))
    try:
        while len(limiter.grants) < 3:
            await asyncio.wait([third], return_when=asyncio.FIRST_COMPLETED)
    finally:
        third.cancel()
        await asyncio.gather(third, return_exceptions=True)
    _, lost, after = limiter.grants
    # The cancelled caller's slot stays spent: the next caller queues behind it.
    assert after - lost >= interval_us(limit)


async def test_acquire_times_out_on_a_long_queue_without_taking_a_slot(
    redis_server: RedisServer, namespace: str, redis_client: Redis
) -> None:
    limiter = recording(redis_server, namespace, acquire_timeout=0.5)
    try:
        limit = RateLimit(1, per=60.0)
        await limiter.acquire(KEY, limit)
        tat_key = limiter._keys_for(KEY)[1]
        before = await redis_client.get(tat_key)
        with pytest.raises(RateLimiterTimeoutError, match=r"acquire_timeout=0\.5") as caught:
            await limiter.acquire(KEY, limit)
        assert isinstance(caught.value, CapillaryError)
        assert limiter.sleeps == []
        assert await redis_client.get(tat_key) == before
    finally:
        await limiter.aclose()


async def test_acquire_times_out_on_a_long_cooldown(
    redis_server: RedisServer, namespace: str
) -> None:
    limiter = recording(redis_server, namespace, acquire_timeout=0.5)
    try:
        await limiter.cool_down(KEY, 30)
        with pytest.raises(RateLimiterTimeoutError, match="cooldown"):
            await limiter.acquire(KEY, None)
        assert limiter.sleeps == []
    finally:
        await limiter.aclose()


async def test_a_cooldown_cuts_the_shared_rate_once(limiters: list[RecordingLimiter]) -> None:
    first, second, _ = limiters
    limit = RateLimit(20, per=0.5)
    await first.acquire(KEY, limit)
    await second.acquire(OTHER_KEY, limit)
    assert second.effective_rate(KEY) is None  # no limited acquire of KEY yet
    # A 429 after one request: too few to measure, so the rate is cut to 70%...
    await first.cool_down(KEY, 0.05)
    await first.cool_down(KEY, 0.05)  # ...once per cooldown, not once per 429
    await asyncio.gather(second.acquire(KEY, limit), second.acquire(KEY, limit))
    rate = second.effective_rate(KEY)
    assert rate is not None
    # 70%, held for 3 windows (1.5 s, far more than this test takes).
    assert rate == pytest.approx(0.7 * limit.rate)
    earlier, later = sorted(second.grants[-2:])
    assert later - earlier >= interval_us(limit) / 0.7
    assert first.effective_rate(KEY) == limit.rate  # it has not acquired since the cut


async def test_a_cooldown_settles_the_shared_rate_under_what_all_processes_sent(
    limiters: list[RecordingLimiter],
) -> None:
    first, second, third = limiters
    limit = RateLimit(200, per=2.0)  # ~10 ms apart: 30 requests take a fraction of a window
    for index in range(30):
        await limiters[index % 2].acquire(KEY, limit)
    await first.cool_down(KEY, 0.05)  # the 429 of the 30th request: 29 were accepted
    await second.cool_down(KEY, 0.05)  # another process's request that left before it: 28
    await third.acquire(KEY, limit)
    accepted = 28
    assert third.effective_rate(KEY) == pytest.approx(
        limit.rate * (accepted + 1 - 0.01 - limit.burst) / (limit.limit + 1 - 0.01 - limit.burst)
    )


async def test_a_slot_coming_after_a_429_of_this_process_is_given_up(
    limiters: list[RecordingLimiter],
) -> None:
    # The check before the slot passed; then this process met a 429 (its cooldown is now in
    # Redis). The caller does not send into it, as the in-process limiter would not.
    limiter = limiters[0]
    limit = RateLimit(4, per=1.0, burst=1, safety_margin=0)  # one slot every ~0.25 s

    async def rate_limited_meanwhile(seconds: float) -> None:
        if len(limiter.sleeps) == 2:  # the last few milliseconds before the slot
            await limiter.cool_down(KEY, 0.5)

    await limiter.acquire(KEY, limit)
    limiter.on_sleep = rate_limited_meanwhile
    started = time.monotonic()
    await limiter.acquire(KEY, limit)
    assert time.monotonic() - started >= 0.499
    assert len(limiter.grants) == 3  # a new slot after the cooldown


@virtual_time
async def test_callers_woken_together_leave_an_interval_apart() -> None:
    # Every caller is told the same slot (as late timers would make them leave together):
    # this process still sends them the bucket's interval apart.
    fake = FlakyRedis()
    fake.down = False
    fake.wait_us = 100_000
    limiter = flaky_limiter(fake, acquire_timeout=30.0)
    loop = asyncio.get_running_loop()
    limit = RateLimit(10, per=1.0, burst=1)
    left: list[float] = []

    async def acquire() -> None:
        await limiter.acquire(KEY, limit)
        left.append(loop.time())

    await asyncio.gather(*(acquire() for _ in range(5)))
    assert left[0] == pytest.approx(0.1, abs=1e-3)
    assert all(b - a >= 1 / limit.rate - 1e-6 for a, b in itertools.pairwise(left))
    await limiter.aclose()


async def test_the_cut_only_applies_with_a_limit_and_when_adaptive(
    redis_server: RedisServer, namespace: str, redis_client: Redis
) -> None:
    limiter = recording(redis_server, namespace, adaptive=False)
    try:
        limit = RateLimit(20, per=0.5)
        await limiter.acquire(KEY, limit)
        await limiter.cool_down(KEY, 0.01)
        await limiter.cool_down(OTHER_KEY, 0.01)  # never acquired with a limit
        assert not await redis_client.exists(limiter._keys_for(KEY)[2])
        assert not await redis_client.exists(limiter._keys_for(OTHER_KEY)[2])
        assert limiter.effective_rate(KEY) == limit.rate
    finally:
        await limiter.aclose()


async def test_unreachable_redis_raises_a_typed_error_after_acquire_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://user:{SECRET}@127.0.0.1:{free_port()}/0"
    limiter = recording_from_url(url, namespace="org", acquire_timeout=0.3)
    caplog.set_level(logging.DEBUG)
    try:
        started = time.monotonic()
        with pytest.raises(RateLimiterUnavailableError) as caught:
            await limiter.acquire(KEY, RateLimit(10, per=1.0))
        # Refused connections fail at once; the acquire waited for Redis all the same, pinging
        # it meanwhile (lower bounds only: a loaded machine can only make them larger).
        assert time.monotonic() - started >= 0.299
        assert limiter.sleeps
        started = time.monotonic()
        with pytest.raises(RateLimiterUnavailableError):
            await limiter.cool_down(KEY, 1.0)
        assert time.monotonic() - started >= 0.299
        assert isinstance(caught.value, CapillaryError)
        message = str(caught.value)
        assert "127.0.0.1" in message
        assert "acquire_timeout=0.3" in message
        assert "ConnectionError" in message  # the cause is named
        for text in (message, repr(caught.value), repr(limiter), caplog.text):
            assert SECRET not in text
    finally:
        await limiter.aclose()


async def test_a_redis_that_never_answers_is_unavailable_after_acquire_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts connections; nobody ever reads or answers
        port = silent.getsockname()[1]
        limiter = RedisRateLimiter.from_url(
            f"redis://127.0.0.1:{port}/0",
            namespace="org",
            command_timeout=0.3,
            acquire_timeout=0.5,
        )
        try:
            started = time.monotonic()
            with pytest.raises(RateLimiterUnavailableError, match="TimeoutError"):
                await limiter.acquire(KEY, RateLimit(10, per=1.0))
            assert time.monotonic() - started < 10  # generous: it gives up after ~0.5 s
        finally:
            await limiter.aclose()


async def test_fallback_limits_locally_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    limiter = RedisRateLimiter.from_url(url, namespace="org", fallback=True)
    caplog.set_level(logging.DEBUG, logger="capillary_points_async")
    try:
        limit = RateLimit(1000, per=1.0)
        for _ in range(3):
            await limiter.acquire(KEY, limit)
        started = time.monotonic()
        await limiter.cool_down(KEY, 0.2)
        await limiter.acquire(KEY, limit)
        assert time.monotonic() - started >= 0.199  # the local cooldown held the request
        warnings = [
            record
            for record in caplog.records
            if record.levelno == logging.WARNING and record.name == "capillary_points_async"
        ]
        assert len(warnings) == 1
        assert "in-process" in warnings[0].getMessage()
        assert SECRET not in caplog.text
    finally:
        await limiter.aclose()


async def test_fallback_returns_to_redis_once_it_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    now = [1000.0]
    monkeypatch.setattr(redis_module, "_clock", lambda: now[0])
    port = free_port()
    limiter = RedisRateLimiter.from_url(
        f"redis://127.0.0.1:{port}/0", namespace="org", fallback=True, fallback_recheck=5.0
    )
    caplog.set_level(logging.INFO, logger="capillary_points_async")
    server: RedisServer | None = None
    try:
        await limiter.acquire(KEY, None)  # Redis down: falls back
        server = RedisServer(tmp_path, port=port)
        await limiter.cool_down(KEY, 30)  # still within fallback_recheck: stays local
        async with Redis(host=server.host, port=port) as probe:
            assert not await probe.exists(limiter._keys_for(KEY)[0])
            now[0] += 5.0
            await limiter.cool_down(KEY, 30)  # recheck due: reaches Redis again
            assert await probe.exists(limiter._keys_for(KEY)[0])
        assert "reachable again" in caplog.text
    finally:
        await limiter.aclose()
        if server is not None:
            server.stop()


async def test_closing(redis_server: RedisServer, namespace: str) -> None:
    client = Redis(host=redis_server.host, port=redis_server.port)
    try:
        limiter = RedisRateLimiter(client, namespace=namespace)
        await limiter.acquire(KEY, None)
        await limiter.aclose()
        await limiter.aclose()  # idempotent
        with pytest.raises(RateLimiterUnavailableError, match="closed"):
            await limiter.acquire(KEY, None)
        assert await client.ping()  # a client passed in stays its owner's
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"namespace": ""}, "namespace"),
        ({"namespace": "x", "acquire_timeout": 0}, "acquire_timeout"),
        ({"namespace": "x", "command_timeout": -1.0}, "command_timeout"),
        ({"namespace": "x", "fallback_recheck": math.inf}, "fallback_recheck"),
        ({"namespace": "x", "max_connections": 0}, "max_connections"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        RedisRateLimiter.from_url("redis://127.0.0.1:1/0", **kwargs)


def test_a_bad_url_is_reported_without_its_password() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        RedisRateLimiter.from_url(f"http://:{SECRET}@127.0.0.1/0", namespace="x")
    assert SECRET not in str(caught.value)


async def test_bad_cooldowns(limiters: list[RecordingLimiter], redis_client: Redis) -> None:
    limiter = limiters[0]
    with pytest.raises(InvalidRequestError):
        await limiter.cool_down(KEY, math.nan)
    await limiter.cool_down(KEY, 0)
    await limiter.cool_down(KEY, -3)
    assert not await redis_client.exists(limiter._keys_for(KEY)[0])


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        (f"redis://:{SECRET}@redis.internal:6379/0", "redis://:***@redis.internal:6379/0"),
        (f"rediss://app:{SECRET}@[::1]:6380/2", "rediss://app:***@[::1]:6380/2"),
        (
            f"unix:///run/redis.sock?db=1&password={SECRET}",
            "unix:///run/redis.sock?db=1&password=***",
        ),
        (f"redis://:{SECRET}@h:notaport/0", "redis://:***@h:notaport/0"),
        (f"redis://:p@{SECRET}@h:6379/0", "redis://:***@h:6379/0"),
        (f"redis://:p?{SECRET}@h:6379/0", "<unparseable Redis URL>"),
        (f"redis://:p#{SECRET}@h:6379/0", "<unparseable Redis URL>"),
        ("redis://[::1/0", "<unparseable Redis URL>"),
    ],
)
def test_redact(url: str, shown: str) -> None:
    assert redis_module._redact(url) == shown


# -- Redis outages ---------------------------------------------------------------------------


class FlakyRedis:
    """Stands in for ``redis.asyncio.Redis`` where only the handling of an outage is under test,
    in virtual time (which real sockets would not follow): while ``down`` every call fails as a
    refused connection does; otherwise the acquire script grants a slot ``wait_us`` from now.
    Records when each call came (loop time) and the cooldowns' lengths."""

    def __init__(self) -> None:
        self.down = True
        self.wait_us = 0
        self.pings: list[float] = []
        self.acquires: list[float] = []
        self.cool_downs: list[tuple[float, int]] = []  # (when, length in us)

    def register_script(self, lua: str) -> Callable[..., Awaitable[list[int]]]:
        acquire = lua == redis_module._ACQUIRE_LUA

        async def run(keys: Sequence[str], args: Sequence[int]) -> list[int]:
            now = asyncio.get_running_loop().time()
            if acquire:
                self.acquires.append(now)
            else:
                self.cool_downs.append((now, args[0]))
            self._answer()
            return [1, self.wait_us if args[0] else 0, 0, "1"]

        return run

    async def ping(self) -> bool:
        self.pings.append(asyncio.get_running_loop().time())
        self._answer()
        return True

    def _answer(self) -> None:
        if self.down:
            raise RedisConnectionError(
                "Error 111 connecting to 127.0.0.1:6379. Connection refused."
            )

    async def aclose(self) -> None:
        pass


def flaky_limiter(fake: FlakyRedis, **kwargs: Any) -> RecordingLimiter:
    return RecordingLimiter(cast(Redis, fake), namespace="org", **kwargs)


async def test_a_short_outage_delays_acquires_instead_of_failing_them(
    tmp_path: Path, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    limiter = recording_from_url(
        f"redis://127.0.0.1:{port}/0", namespace=namespace, acquire_timeout=30.0
    )
    server: RedisServer | None = None

    async def redis_returns(seconds: float) -> None:
        nonlocal server
        # Every wait here is the probe's (no caller waits for a slot): Redis is back during
        # the third, so the probe's third ping finds it.
        if len(limiter.sleeps) == 3:
            server = RedisServer(tmp_path, port=port)

    limiter.on_sleep = redis_returns
    caplog.set_level(logging.INFO, logger="capillary_points_async")
    limit = RateLimit(100, per=1.0, burst=10)
    try:
        # The bound only keeps a broken limiter from hanging the run.
        await asyncio.wait_for(
            asyncio.gather(*(limiter.acquire(KEY, limit) for _ in range(6))), timeout=60
        )
    finally:
        await limiter.aclose()
        if server is not None:
            server.stop()
    assert len(limiter.grants) == 6  # every caller got a slot of the shared bucket
    assert len(limiter.sleeps) == 3  # the first ping after Redis returned found it
    assert limiter.failures <= 6  # no caller tried Redis more than once by itself
    assert "unavailable" in caplog.text
    assert "reachable again" in caplog.text


@virtual_time
async def test_waiters_share_one_probe_that_backs_off() -> None:
    fake = FlakyRedis()
    limiter = flaky_limiter(fake, acquire_timeout=30.0)
    loop = asyncio.get_running_loop()
    loop.call_later(6.0, setattr, fake, "down", False)  # a 6 s outage
    granted: list[float] = []

    async def acquire() -> None:
        await limiter.acquire(KEY, RateLimit(100, per=1.0))
        granted.append(loop.time())

    await asyncio.gather(*(acquire() for _ in range(20)))
    # Callers tried Redis themselves only as the outage began, at most once each (one of them
    # on 3.11+; on 3.10 wait_for's extra task lets them all start before the first failure is
    # seen), never while the probe ran; each tried once more when the probe found it back.
    before = [when for when in fake.acquires if when < 6.0]
    assert set(before) == {0.0}
    assert 1 <= len(before) <= 20
    assert len(fake.acquires) - len(before) == 20
    # One probe for all of them: one ping per wait, the waits growing from 50 ms, doubling,
    # up to 2 s (full jitter draws each from zero up to that).
    assert len(fake.pings) == len(limiter.sleeps) >= 4
    for step, slept in enumerate(limiter.sleeps):
        assert 0 <= slept <= min(0.05 * 2**step, 2.0)
    assert fake.pings[-1] >= 6.0 > fake.pings[-2]
    # Everyone carried on within one capped wait of Redis's return.
    assert len(granted) == 20
    assert all(6.0 <= when <= 8.0 for when in granted)
    assert limiter._probe is None
    await limiter.aclose()


@virtual_time
async def test_a_caller_keeps_its_reserved_slot_when_redis_goes_away_before_it() -> None:
    fake = FlakyRedis()
    fake.down = False
    fake.wait_us = 1_000_000  # the slot is a second away
    limiter = flaky_limiter(fake, acquire_timeout=30.0)
    loop = asyncio.get_running_loop()
    loop.call_later(0.5, setattr, fake, "down", True)
    await limiter.acquire(KEY, RateLimit(1, per=1.0))
    # It left at its slot: the failed check just before it gave nothing up.
    assert loop.time() == pytest.approx(1.0, abs=1e-3)
    assert fake.acquires == [0.0, pytest.approx(1.0 - redis_module._RECHECK_LEAD, abs=1e-3)]
    await limiter.aclose()


@virtual_time
async def test_an_outage_past_acquire_timeout_fails_each_acquire_at_its_own_timeout() -> None:
    fake = FlakyRedis()  # down for good
    limiter = flaky_limiter(fake, acquire_timeout=5.0)
    loop = asyncio.get_running_loop()

    async def acquire(after: float) -> float:
        await asyncio.sleep(after)
        began = loop.time()
        with pytest.raises(RateLimiterUnavailableError, match=r"acquire_timeout=5\.0") as caught:
            await limiter.acquire(KEY, None)
        assert "Connection refused" in str(caught.value)
        return loop.time() - began

    waited = await asyncio.gather(acquire(0.0), acquire(1.0), acquire(2.5))
    assert waited == pytest.approx([5.0, 5.0, 5.0], abs=1e-3)
    assert len(fake.acquires) == 1  # the later callers joined the known outage
    # Nobody waits any more: the probe stops, so an idle limiter leaves no task behind...
    assert limiter._probe is None
    pings = len(fake.pings)
    await asyncio.sleep(60)
    assert len(fake.pings) == pings
    # ...and the next caller tries Redis itself before waiting again.
    with pytest.raises(RateLimiterUnavailableError):
        await limiter.acquire(KEY, None)
    assert len(fake.acquires) == 2
    await limiter.aclose()


@virtual_time
async def test_a_cooldown_during_an_outage_shares_what_is_left_of_it() -> None:
    fake = FlakyRedis()
    limiter = flaky_limiter(fake, acquire_timeout=30.0)
    loop = asyncio.get_running_loop()
    loop.call_later(4.0, setattr, fake, "down", False)
    await limiter.cool_down(KEY, 10.0)
    (failed_at, whole), (stored_at, left) = fake.cool_downs
    assert failed_at == 0.0
    assert whole == 10_000_000
    assert 4.0 <= stored_at <= 6.0
    assert left / 1e6 == pytest.approx(10.0 - stored_at, abs=1e-3)
    await limiter.aclose()


@virtual_time
async def test_without_acquire_timeout_callers_wait_out_the_outage_until_closed() -> None:
    fake = FlakyRedis()  # down for good
    limiter = flaky_limiter(fake, acquire_timeout=None)
    waiter = asyncio.create_task(limiter.acquire(KEY, None))
    await asyncio.sleep(3600)
    assert not waiter.done()  # no bound chosen: it waits for Redis as for a queue
    await limiter.aclose()
    with pytest.raises(RateLimiterUnavailableError, match="closed"):
        await waiter
    assert limiter._probe is None


class CountingLocal(InProcessRateLimiter):
    """The fallback limiter, counting the callers that queue in it and the turns it grants."""

    __slots__ = ("granted", "queued")

    def __init__(self) -> None:
        super().__init__()
        self.queued = 0
        self.granted = 0

    async def acquire(self, key: str, limit: RateLimit | None) -> None:
        self.queued += 1
        await super().acquire(key, limit)
        self.granted += 1


async def test_callers_queued_on_the_fallback_move_to_redis_when_it_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, namespace: str
) -> None:
    now = [1000.0]
    monkeypatch.setattr(redis_module, "_clock", lambda: now[0])
    port = free_port()
    limiter = recording_from_url(
        f"redis://127.0.0.1:{port}/0", namespace=namespace, fallback=True, fallback_recheck=5.0
    )
    local = limiter._local = CountingLocal()
    server: RedisServer | None = None
    try:
        # A 429 while Redis is down: its cooldown is kept in this process only, and callers
        # queue in the fallback behind it (so no local turn can come early by timing alone).
        await limiter.cool_down(KEY, 3.0)
        waiters = [
            asyncio.create_task(limiter.acquire(KEY, RateLimit(100, per=1.0))) for _ in range(5)
        ]
        for _ in range(100):
            if local.queued == len(waiters):
                break
            await asyncio.sleep(0)
        assert local.queued == len(waiters)
        server = RedisServer(tmp_path, port=port)
        now[0] += 5.0  # the recheck is due: the next call reaches Redis
        await limiter.acquire(OTHER_KEY, None)
        await asyncio.gather(*waiters)
    finally:
        await limiter.aclose()
        if server is not None:
            server.stop()
    # Every queued caller took a slot of the shared bucket; none was let through locally on
    # top of it.
    assert local.granted == 0
    assert len(limiter.grants) == len(waiters)
