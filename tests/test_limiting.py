"""The proactive limiter and the shared cooldown, on looptime's fake loop clock: every wait
below is a jump of the loop's clock, never a real sleep."""

from __future__ import annotations

import asyncio
import bisect

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capillary_points_async import InProcessRateLimiter, InvalidRequestError, RateLimit, RateLimiter
from capillary_points_async._bucket import Bucket, quota_factor
from capillary_points_async.testing import RateLimitRule
from capillary_points_async.testing._traffic import SlidingWindow

from ._clock import virtual_time

KEY = "v2/points/isTransferrable"


def max_in_window(times: list[float], window: float) -> int:
    """The most events in any closed window [t, t + window]."""
    times = sorted(times)
    return max((bisect.bisect_right(times, t + window) - i for i, t in enumerate(times)), default=0)


async def grant_times(acquire: object, count: int) -> list[float]:
    """Times at which `count` back-to-back callers are let through."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    times: list[float] = []

    async def one() -> None:
        await acquire()  # type: ignore[operator]
        times.append(loop.time() - start)

    await asyncio.gather(*(one() for _ in range(count)))
    return times


@virtual_time
async def test_sized_bucket_never_exceeds_the_limit_from_the_first_second() -> None:
    limiter = InProcessRateLimiter()
    limit = RateLimit(10, per=1.0)
    times = await grant_times(lambda: limiter.acquire(KEY, limit), 200)
    assert max_in_window(times, 1.0) <= 10
    # The safety margin holds for a window stretched by it, too.
    assert max_in_window(times, 1.0 * (1 + limit.safety_margin)) <= 10
    paced = times[limit.burst :]  # after the bucket's first burst
    steady = (len(paced) - 1) / (paced[-1] - paced[0])
    assert steady == pytest.approx(limit.rate, rel=1e-3)
    assert steady >= 0.95 * 10


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=300),
    per=st.floats(min_value=0.05, max_value=120.0),
    burst_share=st.floats(min_value=0.0, max_value=1.0),
    margin=st.sampled_from([0.0, 0.02, 0.1]),
)
def test_no_window_ever_sees_more_than_the_limit(
    limit: int, per: float, burst_share: float, margin: float
) -> None:
    burst = max(1, round(limit * burst_share))
    rate_limit = RateLimit(limit, per=per, burst=burst, safety_margin=margin)
    limiter = InProcessRateLimiter()

    async def scenario() -> list[float]:
        return await grant_times(lambda: limiter.acquire(KEY, rate_limit), 3 * limit + 5)

    times = virtual_time(scenario)()
    assert max_in_window(times, per) <= limit


@virtual_time
async def test_endpoints_have_separate_buckets() -> None:
    limiter = InProcessRateLimiter()
    limit = RateLimit(5, per=1.0)
    loop = asyncio.get_running_loop()
    for _ in range(5):
        await limiter.acquire("v1.1/points/validationcode", limit)
    t0 = loop.time()
    await limiter.acquire(KEY, limit)
    assert loop.time() == t0  # the other endpoint's traffic did not hold this one up


@virtual_time
async def test_cooldown_holds_current_and_later_requests_until_it_ends() -> None:
    limiter = InProcessRateLimiter()
    loop = asyncio.get_running_loop()
    start = loop.time()
    await limiter.cool_down(KEY, 5.0)
    released: list[float] = []

    async def request(delay: float) -> None:
        await asyncio.sleep(delay)
        await limiter.acquire(KEY, None)
        released.append(loop.time() - start)

    await asyncio.gather(request(0), request(1.0), request(4.9), request(6.0))
    assert released == pytest.approx([5.0, 5.0, 5.0, 6.0])


@virtual_time
async def test_cooldown_then_bucket_paces_the_waiters_instead_of_a_burst() -> None:
    limiter = InProcessRateLimiter()
    limit = RateLimit(10, per=1.0)
    await limiter.cool_down(KEY, 3.0)
    times = await grant_times(lambda: limiter.acquire(KEY, limit), 30)
    assert min(times) == pytest.approx(3.0)
    assert max_in_window(times, 1.0) <= 10


@virtual_time
async def test_shorter_cooldown_does_not_cut_a_longer_one() -> None:
    limiter = InProcessRateLimiter()
    loop = asyncio.get_running_loop()
    start = loop.time()
    await limiter.cool_down(KEY, 10.0)
    await limiter.cool_down(KEY, 2.0)
    await limiter.acquire(KEY, None)
    assert loop.time() - start == pytest.approx(10.0)


@virtual_time
async def test_longer_cooldown_extends_a_running_one() -> None:
    limiter = InProcessRateLimiter()
    loop = asyncio.get_running_loop()
    start = loop.time()
    await limiter.cool_down(KEY, 2.0)

    async def extend() -> None:
        await asyncio.sleep(1.0)
        await limiter.cool_down(KEY, 4.0)

    waiter = asyncio.create_task(limiter.acquire(KEY, None))
    await extend()
    await waiter
    assert loop.time() - start == pytest.approx(5.0)


@virtual_time
async def test_cooldown_started_while_waiting_for_a_token_is_honoured() -> None:
    limiter = InProcessRateLimiter()
    limit = RateLimit(1, per=10.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await limiter.acquire(KEY, limit)  # the bucket's only token; the next is ~10 s away
    waiter = asyncio.create_task(limiter.acquire(KEY, limit))
    await asyncio.sleep(1.0)
    await limiter.cool_down(KEY, 30.0)
    await waiter
    assert loop.time() - start >= 31.0


@virtual_time
async def test_cancelled_waiter_does_not_disturb_the_others() -> None:
    limiter = InProcessRateLimiter()
    loop = asyncio.get_running_loop()
    start = loop.time()
    await limiter.cool_down(KEY, 3.0)
    doomed = asyncio.create_task(limiter.acquire(KEY, None))
    survivor = asyncio.create_task(limiter.acquire(KEY, None))
    await asyncio.sleep(1.0)
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    await survivor
    assert loop.time() - start == pytest.approx(3.0)


@virtual_time
async def test_aclose_releases_waiters_and_timers() -> None:
    limiter = InProcessRateLimiter()
    await limiter.cool_down(KEY, 1000.0)
    waiter = asyncio.create_task(limiter.acquire(KEY, None))
    await asyncio.sleep(0)
    await limiter.aclose()
    await asyncio.wait_for(waiter, 1.0)


@virtual_time
async def test_callers_get_their_turns_in_arrival_order() -> None:
    limiter = InProcessRateLimiter()
    limit = RateLimit(10, per=1.0)
    order: list[int] = []

    async def caller(number: int) -> None:
        await limiter.acquire(KEY, limit)
        order.append(number)

    tasks = []
    for number in range(20):
        tasks.append(asyncio.create_task(caller(number)))
        await asyncio.sleep(0)  # each one reaches the limiter before the next starts
    await asyncio.gather(*tasks)
    assert order == list(range(20))


@virtual_time
async def test_a_cancelled_caller_takes_no_slot() -> None:
    limiter = InProcessRateLimiter()
    limit = RateLimit(10, per=1.0, burst=1)
    loop = asyncio.get_running_loop()
    await limiter.acquire(KEY, limit)
    doomed = asyncio.create_task(limiter.acquire(KEY, limit))
    await asyncio.sleep(0.01)  # it waits for the next slot, ~0.1 s away
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    await limiter.acquire(KEY, limit)
    assert loop.time() == pytest.approx(1 / limit.rate, abs=1e-5)  # that slot, not the one after


def test_a_late_departure_delays_the_next_slots_instead_of_bunching_them() -> None:
    # A busy event loop wakes a caller 50 ms after its slot: the bucket goes on from when it
    # really left, so no window of real departures holds more than the bucket allows.
    limit = RateLimit(100, per=1.0, burst=2)
    bucket = Bucket(limit)
    interval = bucket.interval
    assert bucket.reserve(0) == 0  # the burst
    assert bucket.reserve(0) == 0
    slot = bucket.reserve(0)
    assert slot == interval
    bucket.left_at(slot + 50_000)
    # One more at once (the burst's tolerance), then an interval apart again.
    assert bucket.reserve(slot + 50_000) == slot + 50_000
    assert bucket.reserve(slot + 50_000) == slot + 50_000 + interval


def test_a_probe_that_finds_the_same_quota_again_doubles_the_hold() -> None:
    limit = RateLimit(300, per=1.0)
    second = 1_000_000

    def saturate(bucket: Bucket, start: int, end: int) -> int:
        """Back-to-back callers from ``start`` until ``end``; returns when the last left."""
        now = start
        while now < end:
            now = bucket.reserve(now)
            bucket.left_at(now)
        return now

    bucket = Bucket(limit)
    now = saturate(bucket, 0, second // 3)  # ~100 in a third of a window, then a 429
    bucket.cut(now)
    first = bucket.adaptation
    assert first is not None
    assert first.hold == 30
    # The hold, then two windows of probing at all the bucket allows: the next 429 measures
    # within 5% of the first quota, which is found again.
    now = saturate(bucket, now + second, now + 32 * second)
    assert bucket.factor > first.settled
    bucket.cut(now)
    assert bucket.adaptation is not None
    assert bucket.adaptation.quota == pytest.approx(first.quota, rel=0.05)
    assert bucket.adaptation.hold == 60
    # Half a window later, nothing sent meanwhile: half the quota, another one; the hold
    # starts over.
    bucket.cut(now + second // 2 + 1)
    assert bucket.adaptation.hold == 30


def test_in_process_limiter_satisfies_the_protocol() -> None:
    assert isinstance(InProcessRateLimiter(), RateLimiter)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((0,), {}),
        ((True,), {}),
        ((10.5,), {}),
        ((10, 0), {}),
        ((10, float("inf")), {}),
        ((10, -1.0), {}),
        ((10,), {"burst": 0}),
        ((10,), {"burst": 11}),
        ((10,), {"safety_margin": 1.0}),
        ((10,), {"safety_margin": -0.1}),
    ],
)
def test_rate_limit_rejects_impossible_settings(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    with pytest.raises(InvalidRequestError):
        RateLimit(*args, **kwargs)  # type: ignore[arg-type]


@virtual_time
async def test_a_429_settles_under_what_the_server_accepted_and_holds_there() -> None:
    limiter = InProcessRateLimiter()
    limit = RateLimit(300, per=1.0)
    loop = asyncio.get_running_loop()
    # Half a second at the configured rate, then the server's quota is full: a 429, and a
    # second one for a request that had left before it.
    times = await grant_times(lambda: limiter.acquire(KEY, limit), round(limit.rate / 2))
    assert times[-1] == pytest.approx(0.5, abs=0.01)
    await limiter.cool_down(KEY, 1.0)
    await limiter.cool_down(KEY, 1.0)  # the same burst's: one fewer accepted, no second cut
    accepted = len(times) - 2
    settled = limit.rate * quota_factor(accepted, limit.limit, limit.burst)
    assert limiter.effective_rate(KEY) == pytest.approx(settled)

    # From the cooldown's end on it runs at the settled rate, which never puts more than what
    # was accepted in a window, and holds it for 30 windows from the cut without probing.
    cut_at = loop.time()
    times = await grant_times(lambda: limiter.acquire(KEY, limit), round(28 * settled))
    assert times[0] == pytest.approx(1.0, abs=0.01)
    assert max_in_window(times, 1.0 * (1 + limit.safety_margin)) <= accepted
    assert 28.0 < loop.time() - cut_at < 30.0
    assert limiter.effective_rate(KEY) == pytest.approx(settled)
    # Then it probes upwards: +1% after a window, +3% after two.
    await asyncio.sleep(2.0)
    await limiter.acquire(KEY, limit)
    assert limiter.effective_rate(KEY) > settled


@virtual_time
async def test_told_three_times_the_quota_it_meets_one_429_burst_and_keeps_97_percent() -> None:
    # The benchmark's scenario (bench_adaptive.py) in virtual time: a gateway admits 100/s
    # over a sliding window, the client is told 300/s, 64 callers, each answer 5 ms after the
    # request left. With the rule before (a probe after 3 quiet windows) this run met a 429
    # about every 6 windows and kept under 90% of the quota over its last 5 s.
    limiter = InProcessRateLimiter()
    limit = RateLimit(300, per=1.0)
    gateway = SlidingWindow(RateLimitRule(100, 1.0))
    loop = asyncio.get_running_loop()
    accepted: list[float] = []
    rejected: list[float] = []

    async def caller() -> None:
        while loop.time() < 18.0:
            await limiter.acquire(KEY, limit)
            retry_after = gateway.admit(loop.time())
            await asyncio.sleep(0.005)
            if retry_after is None:
                accepted.append(loop.time())
            else:
                rejected.append(loop.time())
                await limiter.cool_down(KEY, retry_after)

    await asyncio.gather(*(caller() for _ in range(64)))
    assert len(rejected) <= 3  # the first request over the quota, and those already on the way
    assert max(rejected) < 1.0
    last_5_s = sum(1 for moment in accepted if moment > 13.0) / 5.0
    assert last_5_s >= 97.0


@virtual_time
async def test_without_a_count_a_429_cuts_to_70_percent_and_probes_up_after_quiet_windows() -> None:
    limiter = InProcessRateLimiter()
    limit = RateLimit(10, per=1.0)
    await limiter.acquire(KEY, limit)
    await asyncio.sleep(5.0)  # the one departure has left the window: nothing to measure
    await limiter.cool_down(KEY, 0.5)
    assert limiter.effective_rate(KEY) == pytest.approx(0.7 * limit.rate)
    await asyncio.sleep(3.0)
    await limiter.acquire(KEY, limit)
    assert limiter.effective_rate(KEY) == pytest.approx(0.7 * limit.rate)  # still quiet period
    await asyncio.sleep(3.0)  # 3 windows of probing: +1%, then 2%, then 4% more
    await limiter.acquire(KEY, limit)
    assert limiter.effective_rate(KEY) == pytest.approx(0.7 * 1.07 * limit.rate, rel=0.011)


@virtual_time
async def test_rate_recovers_fully_after_a_long_quiet_spell() -> None:
    limiter = InProcessRateLimiter()
    limit = RateLimit(10, per=1.0)
    await limiter.acquire(KEY, limit)
    await limiter.cool_down(KEY, 0.5)
    assert limiter.effective_rate(KEY) is not None
    assert limiter.effective_rate(KEY) < limit.rate  # type: ignore[operator]
    await asyncio.sleep(1000.0)
    await limiter.acquire(KEY, limit)
    assert limiter.effective_rate(KEY) == pytest.approx(limit.rate)


@virtual_time
async def test_non_adaptive_limiter_keeps_its_rate() -> None:
    limiter = InProcessRateLimiter(adaptive=False)
    limit = RateLimit(10, per=1.0)
    await limiter.acquire(KEY, limit)
    await limiter.cool_down(KEY, 0.5)
    assert limiter.effective_rate(KEY) == pytest.approx(limit.rate)
    assert limiter.effective_rate("v1.1/points/validationcode") is None
