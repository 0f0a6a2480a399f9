"""The gateway: sliding-window rate limits, the record of arrivals, counters."""

from __future__ import annotations

import aiohttp
import pytest

from capillary_points_async.testing import (
    IS_TRANSFERRABLE,
    VALIDATION_CODE,
    FakeCapillary,
    RateLimitRule,
    max_in_window,
)

from .helpers import Api, Clock


async def test_past_the_limit_the_gateway_answers_429_until_the_window_slides(
    session: aiohttp.ClientSession, clock: Clock
) -> None:
    async with FakeCapillary(clock=clock, rate_limits={IS_TRANSFERRABLE: (3, 10.0)}) as fake:
        api = Api(session, fake)
        for _ in range(3):
            assert (await api.check())[0] == 200
            clock.advance(1.0)
        status, headers, body = await api.check()  # t = 3: the window (-7, 3] holds three
        assert status == 429
        assert headers["Retry-After"] == "7"
        assert headers["X-Cap-Requestid"]
        assert body == {
            "errors": [{"status": False, "code": 429, "message": "Rate limit exceeded"}]
        }

        clock.advance(6.5)  # t = 9.5: the first request (t = 0) is still inside
        status, headers, _ = await api.check()
        assert (status, headers["Retry-After"]) == (429, "1")
        clock.advance(0.5)  # t = 10: it has left; the 429s took nothing from the quota
        assert (await api.check())[0] == 200
        assert (await api.check())[0] == 429

        # Other endpoints have their own quota, unlimited here.
        assert all([(await api.code(mobile="9777785205"))[0] == 200 for _ in range(5)])


async def test_both_spellings_share_one_quota(session: aiohttp.ClientSession, clock: Clock) -> None:
    async with FakeCapillary(
        clock=clock, rate_limits={"v2/points/isTransferable": (2, 1.0)}
    ) as fake:
        api = Api(session, fake)
        assert (await api.check(path="/v2/points/isTransferable"))[0] == 200
        assert (await api.check(path="/v2/points/isTransferrable"))[0] == 200
        assert (await api.check(path="/v2/points/isTransferable"))[0] == 429
        assert fake.stats.requests == {IS_TRANSFERRABLE: 3}


async def test_v11_says_517_and_a_default_limit_covers_every_endpoint(
    session: aiohttp.ClientSession, clock: Clock
) -> None:
    async with FakeCapillary(clock=clock, rate_limits=RateLimitRule(1, per=60.0)) as fake:
        api = Api(session, fake)
        assert (await api.code(mobile="9777785205"))[0] == 200
        status, headers, body = await api.code(mobile="9777785205")
        assert (status, headers["Retry-After"]) == (429, "60")
        assert body == {
            "response": {
                "status": {"success": "false", "code": 517, "message": "Rate limit exceeded"}
            }
        }
        assert (await api.check())[0] == 200
        assert (await api.check())[0] == 429


async def test_arrivals_record_every_request_with_its_time(
    session: aiohttp.ClientSession, clock: Clock
) -> None:
    limits = {"*": (100, 1.0), IS_TRANSFERRABLE: (2, 1.0)}
    async with FakeCapillary(clock=clock, rate_limits=limits) as fake:
        api = Api(session, fake)
        for step in range(4):
            await api.check()
            await api.code(mobile="9777785205")
            clock.advance(0.25 if step % 2 else 0.0)
        start = fake.started_at
        assert fake.arrivals(IS_TRANSFERRABLE) == [start, start, start + 0.25, start + 0.25]
        assert fake.arrivals("/v1.1/points/validationcode") == fake.arrivals(IS_TRANSFERRABLE)
        assert len(fake.arrivals()) == 8
        # Four arrivals in the window even though only two were let through.
        assert max_in_window(fake.arrivals(IS_TRANSFERRABLE), 1.0) == 4
        assert fake.stats.by_status(IS_TRANSFERRABLE) == {200: 2, 429: 2}
        assert fake.stats.by_status() == {200: 6, 429: 2}
        assert fake.stats.responses[(VALIDATION_CODE, 200)] == 4


async def test_rate_limits_can_change_at_run_time(
    session: aiohttp.ClientSession, clock: Clock
) -> None:
    async with FakeCapillary(clock=clock, rate_limits=(1, 60.0)) as fake:
        api = Api(session, fake)
        assert [(await api.check())[0] for _ in range(2)] == [200, 429]
        fake.set_rate_limits(None)
        assert [(await api.check())[0] for _ in range(3)] == [200, 200, 200]


@pytest.mark.parametrize(
    ("times", "window", "expected"),
    [
        ([], 1.0, 0),
        ([5.0], 1.0, 1),
        ([0.0, 0.5, 0.99, 1.0], 1.0, 3),  # the window is (t - 1, t]: 0.0 has left at 1.0
        ([0.0, 0.0, 0.0], 0.001, 3),
        ([3.0, 0.0, 2.5, 0.2, 2.9], 1.0, 3),  # unsorted input
        ([0.0, 10.0, 20.0], 5.0, 1),
    ],
)
def test_max_in_window(times: list[float], window: float, expected: int) -> None:
    assert max_in_window(times, window) == expected


@pytest.mark.parametrize(
    "spec",
    [
        {"v3/points/transfer": (1, 1.0)},
        (0, 1.0),
        (1, 0.0),
        (True, 1.0),
        (1, float("inf")),
        "100/min",
    ],
)
def test_bad_rate_limits_are_refused(spec: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        FakeCapillary(rate_limits=spec)  # type: ignore[arg-type]
