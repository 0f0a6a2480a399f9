"""Rate-limit awareness under load: the retry budget, the quota headers and the stats."""

from __future__ import annotations

import json

import pytest
from multidict import CIMultiDict

from capillary_points_async import (
    BasicAuth,
    CapillaryClient,
    Identifier,
    RateLimit,
    RetryPolicy,
    ServerError,
)
from capillary_points_async._protocol import quota_exhausted_for
from capillary_points_async._retry import RetryBudget

from ._scripted import TC_PATH, Reply, ScriptedServer, v2_error


def test_budget_allows_the_minimum_then_its_share_of_calls() -> None:
    budget = RetryBudget(ratio=0.2, window=10.0, minimum=2)
    for _ in range(10):
        budget.record_call(100.0)
    # 2 always + 20% of 10 calls
    assert [budget.try_retry(100.5) for _ in range(5)] == [True, True, True, True, False]


def test_budget_window_slides() -> None:
    budget = RetryBudget(ratio=0.0, window=10.0, minimum=1)
    assert budget.try_retry(0.0)
    assert not budget.try_retry(5.0)
    assert budget.try_retry(10.5)  # the first retry's slot has left the window


def test_budget_forgets_everything_after_a_quiet_spell() -> None:
    budget = RetryBudget(ratio=1.0, window=10.0, minimum=0)
    budget.record_call(0.0)
    assert budget.try_retry(0.0)
    assert not budget.try_retry(0.0)
    assert not budget.try_retry(1000.0)  # no calls in the window: nothing to spend


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "7"}, 7.0),
        ({"RateLimit-Remaining": "0", "RateLimit-Reset": "3"}, 3.0),
        ({"X-RateLimit-Remaining": "0", "Retry-After": "2"}, 2.0),
        ({"X-RateLimit-Remaining": "5", "X-RateLimit-Reset": "7"}, None),
        ({"X-RateLimit-Remaining": "0"}, None),
        ({}, None),
    ],
)
def test_quota_headers(headers: dict[str, str], expected: float | None) -> None:
    assert quota_exhausted_for(CIMultiDict(headers), now=1_000.0) == expected


async def check(client: CapillaryClient) -> object:
    return await client.points.is_transferrable(
        from_customer=Identifier.mobile("9777785206"),
        to_customer=Identifier.mobile("9777785207"),
        points=1,
    )


async def test_failing_upstream_gets_fewer_requests_past_the_budget() -> None:
    policy = RetryPolicy(
        max_attempts=5, wait_initial=0.001, wait_max=0.001, budget_ratio=0.2, budget_min_retries=3
    )
    async with ScriptedServer() as server:
        # v2's 521 (a busy customer) is retried but takes no endpoint down (a 503 would, and
        # later calls would then fail at once without reaching the budget).
        server.defaults[TC_PATH] = v2_error(521, "Multiple actions are running", status=200)
        async with CapillaryClient(
            server.url, BasicAuth("t", "p"), rate_limit=None, retry=policy
        ) as client:
            for _ in range(20):
                with pytest.raises(ServerError):
                    await check(client)
    # Without the budget: 20 calls x 5 attempts = 100. With it: 20 + 3 + 20% of 20 = 27.
    assert len(server.seen) == 27
    assert client.stats.retries == 7
    assert client.stats.budget_exhausted == 19  # every call after the first was cut short
    assert client.stats.errors == 20


async def test_remaining_zero_pauses_the_endpoint_before_any_429() -> None:
    async with ScriptedServer() as server:
        exhausted = Reply(
            body=b'{"data": [], "errors": [{"code": 8015, "message": "x"}]}',
            status=400,
            headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "0.3"},
        )
        server.script(TC_PATH, exhausted)
        async with CapillaryClient(server.url, BasicAuth("t", "p"), rate_limit=None) as client:
            with pytest.raises(Exception):  # noqa: B017, PT011 - the answer itself is an 8015
                await check(client)
            await check(client)
    first, second = server.arrivals(TC_PATH)
    assert second - first >= 0.3 - 0.01
    assert client.stats.cooldown_wait >= 0.28
    assert client.stats.rate_limited == 0


async def test_stats_report_429s_cooldown_time_and_the_adapted_rate() -> None:
    limit = RateLimit(50, per=1.0)
    async with ScriptedServer() as server:
        server.script(TC_PATH, v2_error(429, "slow down", status=429, **{"Retry-After": "0.2"}))
        async with CapillaryClient(server.url, BasicAuth("t", "p"), rate_limit=limit) as client:
            assert client.stats.effective_rates == {}
            await check(client)
            rates = client.stats.effective_rates
    assert client.stats.rate_limited == 1
    assert client.stats.retries == 1
    assert client.stats.cooldown_wait >= 0.18
    assert client.stats.limiter_wait >= client.stats.cooldown_wait
    assert rates["v2/points/isTransferrable"] == pytest.approx(0.7 * limit.rate, rel=0.05)
    assert "requests=2" in repr(client.stats)


async def test_v2_error_entry_that_is_not_an_object_still_fails_the_call() -> None:
    async with ScriptedServer() as server:
        body = json.dumps({"data": [{"transferrable": True}], "errors": ["boom"]})
        server.script(TC_PATH, Reply(body=body, headers={"X-Cap-Requestid": "odd"}))
        async with CapillaryClient(server.url, BasicAuth("t", "p"), rate_limit=None) as client:
            with pytest.raises(Exception, match="boom") as caught:
                await check(client)
    assert getattr(caught.value, "request_id", None) == "odd"
