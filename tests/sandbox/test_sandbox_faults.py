"""Fault injection: each kind, healing at run time, and reproducibility from the seed."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter

import aiohttp
import pytest

from capillary_points_async.testing import (
    IS_TRANSFERRABLE,
    VALIDATION_CODE,
    FakeCapillary,
    FaultKind,
    Faults,
)
from capillary_points_async.testing._faults import decide

from .._clock import virtual_time
from .helpers import CHECK_PATH, CODE_PATH, Api, Clock, basic, check_body


async def status_of(session: aiohttp.ClientSession, fake: FakeCapillary) -> int:
    """One transfer check's HTTP status; -1 stands for a dropped connection."""
    try:
        async with session.post(fake.url + CHECK_PATH, json=check_body()) as response:
            await response.read()
            return response.status
    except aiohttp.ClientConnectionError:
        return -1


async def statuses(session: aiohttp.ClientSession, fake: FakeCapillary, count: int) -> list[int]:
    return [await status_of(session, fake) for _ in range(count)]


# -- latency (under looptime: the loop's clock jumps, nobody waits) ----------------------------


@virtual_time
async def test_latency_delays_answers_but_not_the_gateways_429s() -> None:
    loop = asyncio.get_running_loop()
    async with (
        FakeCapillary(faults=Faults(latency=30.0), rate_limits=(1, 600.0)) as fake,
        aiohttp.ClientSession(headers={"Authorization": basic()}) as session,
    ):
        api = Api(session, fake)
        start = loop.time()
        assert (await api.check())[0] == 200
        assert loop.time() - start == pytest.approx(30.0, abs=0.5)
        start = loop.time()
        assert (await api.check())[0] == 429
        assert loop.time() - start == pytest.approx(0.0, abs=0.5)
        assert fake.arrivals() == pytest.approx([fake.started_at, fake.started_at + 30.0], abs=0.5)


@virtual_time
async def test_a_client_that_gives_up_does_not_hold_the_sandbox_open() -> None:
    loop = asyncio.get_running_loop()
    timeout = aiohttp.ClientTimeout(total=5.0)
    async with FakeCapillary(faults=Faults(latency=3600.0)) as fake:
        async with aiohttp.ClientSession(headers={"Authorization": basic()}, timeout=timeout) as s:
            with pytest.raises(asyncio.TimeoutError):
                await Api(s, fake).check()
        start = loop.time()
    assert loop.time() - start < 5.0


def test_latency_ranges_are_drawn_uniformly() -> None:
    rng = random.Random(1)
    draws = [decide(Faults(latency=(0.1, 0.3)), rng, 0.0).latency for _ in range(2000)]
    assert 0.1 <= min(draws) < 0.11
    assert 0.29 < max(draws) <= 0.3


def test_shares_are_honoured() -> None:
    faults = Faults(throttle_rate=0.1, reset_rate=0.2, error_rate=0.1, busy_rate=0.05)
    rng = random.Random(2)
    counts = Counter(decide(faults, rng, 0.0).fault for _ in range(20_000))
    expected = {
        FaultKind.THROTTLE: 0.1,
        FaultKind.RESET: 0.2,
        FaultKind.ERROR_PAGE: 0.1,
        FaultKind.BUSY: 0.05,
        FaultKind.TRUNCATE: 0.0,
        None: 0.55,
    }
    for kind, share in expected.items():
        assert counts[kind] / 20_000 == pytest.approx(share, abs=0.015)


# -- each kind of fault ------------------------------------------------------------------------


async def test_error_pages_are_html_from_a_proxy(
    session: aiohttp.ClientSession, fake: FakeCapillary
) -> None:
    fake.set_faults(Faults(error_rate=1.0, error_statuses=(502, 503)))
    seen = set()
    for _ in range(12):
        async with session.get(fake.url + CODE_PATH, params={"mobile": "9777785205"}) as response:
            assert response.content_type == "text/html"
            assert response.headers["X-Cap-Requestid"]
            assert f"<title>{response.status} " in await response.text()
            seen.add(response.status)
    assert seen == {502, 503}


async def test_resets_drop_the_connection_without_an_answer(
    session: aiohttp.ClientSession, fake: FakeCapillary
) -> None:
    fake.set_faults(Faults(reset_rate=1.0))
    assert await statuses(session, fake, 3) == [-1, -1, -1]
    assert fake.stats.resets == {IS_TRANSFERRABLE: 3}
    assert fake.stats.requests == {IS_TRANSFERRABLE: 3}
    assert fake.stats.responses == {}


async def test_truncated_bodies_are_half_a_json_document_in_valid_http(
    session: aiohttp.ClientSession, fake: FakeCapillary
) -> None:
    async with session.post(fake.url + CHECK_PATH, json=check_body()) as response:
        whole = await response.read()
    fake.set_faults(Faults(truncate_rate=1.0))
    async with session.post(fake.url + CHECK_PATH, json=check_body()) as response:
        assert response.status == 200
        cut = await response.read()
        assert int(response.headers["Content-Length"]) == len(cut) == len(whole) // 2
    assert whole.startswith(cut)
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut)


async def test_throttle_storms_by_share(
    session: aiohttp.ClientSession, fake: FakeCapillary
) -> None:
    fake.set_faults({VALIDATION_CODE: Faults(throttle_rate=1.0, throttle_retry_after=7)})
    status, headers, body = await Api(session, fake).code(mobile="9777785205")
    assert (status, headers["Retry-After"], body["response"]["status"]["code"]) == (429, "7", 517)
    assert (await Api(session, fake).check())[0] == 200  # the other endpoint is healthy


async def test_throttle_storms_by_time(
    session: aiohttp.ClientSession, fake: FakeCapillary, clock: Clock
) -> None:
    fake.faults = Faults(throttle_during=(10.0, 20.0))
    api = Api(session, fake)
    assert (await api.check())[0] == 200
    clock.advance(10.0)
    status, headers, _ = await api.check()
    assert (status, headers["Retry-After"]) == (429, "10")
    clock.advance(9.5)
    status, headers, _ = await api.code(mobile="9777785205")
    assert (status, headers["Retry-After"]) == (429, "1")
    clock.advance(0.5)
    assert (await api.check())[0] == 200


async def test_busy_is_v2s_521(session: aiohttp.ClientSession, fake: FakeCapillary) -> None:
    fake.set_faults(Faults(busy_rate=1.0))
    api = Api(session, fake)
    status, _, body = await api.check()
    assert status == 521
    assert body["errors"][0]["code"] == 521
    assert body["errors"][0]["message"].startswith("Multiple actions are running")
    # v1.1 documents no such answer.
    assert (await api.code(mobile="9777785205"))[0] == 200


async def test_faults_for_n_requests_then_healed(
    session: aiohttp.ClientSession, fake: FakeCapillary
) -> None:
    fake.set_faults(Faults(error_rate=1.0, error_statuses=(503,), for_requests=2))
    assert await statuses(session, fake, 4) == [503, 503, 200, 200]
    fake.set_faults({"*": Faults(reset_rate=1.0), VALIDATION_CODE: Faults(busy_rate=1.0)})
    assert set(fake.faults) == {IS_TRANSFERRABLE, VALIDATION_CODE}
    assert await statuses(session, fake, 1) == [-1]
    fake.heal()
    assert fake.faults == {}
    assert await statuses(session, fake, 2) == [200, 200]
    assert fake.stats.by_status(IS_TRANSFERRABLE) == {503: 2, 200: 4}


async def test_wrong_credentials_still_meet_proxy_faults(fake: FakeCapillary) -> None:
    fake.set_faults(Faults(error_rate=1.0, error_statuses=(502,)))
    async with aiohttp.ClientSession() as anonymous:
        assert await statuses(anonymous, fake, 1) == [502]
        fake.heal()
        assert await statuses(anonymous, fake, 1) == [401]


# -- reproducibility ---------------------------------------------------------------------------


async def run_mixed(session: aiohttp.ClientSession, seed: int) -> tuple[list[int], str]:
    faults = Faults(error_rate=0.2, reset_rate=0.2, busy_rate=0.2, truncate_rate=0.1)
    async with FakeCapillary(seed=seed, faults=faults, clock=Clock()) as fake:
        seen = await statuses(session, fake, 30)
        async with session.post(fake.url + CHECK_PATH, json=check_body()) as response:
            await response.read()
            return seen, response.headers["X-Cap-Requestid"]


async def test_the_same_seed_gives_the_same_faults_and_ids(session: aiohttp.ClientSession) -> None:
    first, again, other = [await run_mixed(session, seed) for seed in (7, 7, 8)]
    assert first == again
    assert first != other
    assert {-1, 200, 502, 503, 521} <= set(first[0]) | set(other[0])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"error_rate": 1.5},
        {"error_rate": 0.6, "reset_rate": 0.6},
        {"latency": -1.0},
        {"latency": (2.0, 1.0)},
        {"error_statuses": (404,)},
        {"error_statuses": ()},
        {"throttle_during": (5.0, 1.0)},
        {"throttle_retry_after": -1},
        {"for_requests": 1.5},
    ],
)
def test_impossible_faults_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        Faults(**kwargs)  # type: ignore[arg-type]


def test_faults_for_unknown_endpoints_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown endpoint"):
        FakeCapillary(faults={"v2/points/transfer": Faults(reset_rate=1.0)})
