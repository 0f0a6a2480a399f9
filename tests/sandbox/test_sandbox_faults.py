"""Fault injection: each kind, healing at run time, and reproducibility from the seed."""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections import Counter
from typing import Any

import aiohttp
import pytest

from capillary_points_async import (
    BasicAuth,
    CapillaryClient,
    Identifier,
    OutcomeUnknownError,
    RedeemRequest,
    RetryPolicy,
    TransportError,
)
from capillary_points_async.testing import (
    ENDPOINTS,
    IS_TRANSFERRABLE,
    REDEEM,
    TRANSFER,
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
    faults = Faults(
        throttle_rate=0.1, reset_rate=0.2, error_rate=0.1, busy_rate=0.05, drop_after_apply_rate=0.1
    )
    rng = random.Random(2)
    counts = Counter(decide(faults, rng, 0.0).fault for _ in range(20_000))
    expected = {
        FaultKind.THROTTLE: 0.1,
        FaultKind.RESET: 0.2,
        FaultKind.ERROR_PAGE: 0.1,
        FaultKind.BUSY: 0.05,
        FaultKind.TRUNCATE: 0.0,
        FaultKind.DROP_AFTER_APPLY: 0.1,
        None: 0.45,
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
    assert set(fake.faults) == set(ENDPOINTS)
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
        {"drop_after_apply_rate": 1.5},
        {"drop_after_apply_rate": -0.1},
        {"drop_after_apply_rate": 0.5, "reset_rate": 0.6},
        {"outage_during": (5.0, 1.0)},
        {"outage_during": (1.0,)},
        {"outage_during": (True, 5.0)},
        {"outage_during": (0.0, float("nan"))},
        {"outage_during": [0.0, 5.0]},
    ],
)
def test_impossible_faults_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        Faults(**kwargs)  # type: ignore[arg-type]


def test_faults_for_unknown_endpoints_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown endpoint"):
        FakeCapillary(faults={"v2/points/redeem": Faults(reset_rate=1.0)})


# -- answers lost after the request was carried out (issue 12) --------------------------------

MOBILE = Identifier.mobile("919777785205")


def sandbox_client(fake: FakeCapillary, **kwargs: Any) -> CapillaryClient:
    kwargs.setdefault("retry", RetryPolicy(max_attempts=4, wait_initial=0.001, wait_max=0.001))
    return CapillaryClient(fake.url, BasicAuth("sandbox", "sandbox"), rate_limit=None, **kwargs)


def balance(fake: FakeCapillary, mobile: str) -> float:
    customer = fake.state.find("mobile", mobile)
    assert customer is not None
    return customer.transaction_points


async def test_a_redemption_whose_answer_is_lost_is_applied_once_and_unknown_to_the_client() -> (
    None
):
    async with FakeCapillary() as fake, sandbox_client(fake) as client:
        await client.points.issue_validation_code(MOBILE)
        code = fake.state.otp_for("919777785205")
        assert code is not None
        fake.set_faults({REDEEM: Faults(drop_after_apply_rate=1.0)})
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.points.redeem(MOBILE, points=10, validation_code=code)
    assert caught.value.request == RedeemRequest(MOBILE, points=10, validation_code=code)
    assert fake.stats.requests[REDEEM] == 1  # never sent twice
    assert fake.stats.resets[REDEEM] == 1
    assert fake.stats.by_status(REDEEM) == {}  # no answer went out
    [done] = fake.state.redemptions
    assert (done.points, done.validation_code) == (10, code)
    assert balance(fake, "919777785205") == 4990.0
    assert fake.state.otp_for("919777785205") is None  # used up by the redemption


async def test_a_transfer_whose_answer_is_lost_moved_the_points_once() -> None:
    sender, receiver = Identifier.mobile("9777785206"), Identifier.mobile("9777785207")
    async with (
        FakeCapillary(faults={TRANSFER: Faults(drop_after_apply_rate=1.0)}) as fake,
        sandbox_client(fake) as client,
    ):
        with pytest.raises(OutcomeUnknownError):
            await client.points.transfer(from_customer=sender, to_customer=receiver, points=7)
    assert fake.stats.requests[TRANSFER] == 1
    assert len(fake.state.transfers) == 1
    assert (balance(fake, "9777785206"), balance(fake, "9777785207")) == (493.0, 7.0)


async def test_a_refused_request_whose_answer_is_lost_changed_nothing() -> None:
    async with (
        FakeCapillary(faults={REDEEM: Faults(drop_after_apply_rate=1.0)}) as fake,
        sandbox_client(fake) as client,
    ):
        with pytest.raises(OutcomeUnknownError):
            await client.points.redeem(MOBILE, points=10, validation_code="WRONG1")
    assert fake.state.redemptions == []
    assert balance(fake, "919777785205") == 5000.0


async def test_a_check_whose_answer_is_lost_is_sent_again_and_answered() -> None:
    async with (
        FakeCapillary(faults=Faults(drop_after_apply_rate=1.0, for_requests=1)) as fake,
        sandbox_client(fake) as client,
    ):
        check = await client.points.is_transferrable(
            from_customer=Identifier.mobile("9777785206"),
            to_customer=Identifier.mobile("9777785207"),
            points=1,
        )
    assert check.transferrable is True
    assert fake.stats.requests[IS_TRANSFERRABLE] == 2
    assert fake.stats.resets[IS_TRANSFERRABLE] == 1


# -- outages: connections refused for a while (issue 13) -------------------------------------


async def redeem_attempt(client: CapillaryClient, code: str) -> str:
    """Redeem one point: "ok", or how the client failed."""
    try:
        await client.points.redeem(MOBILE, points=1, validation_code=code)
    except OutcomeUnknownError:
        return "outcome unknown"
    except TransportError as exc:
        return "connect failed" if exc.connect_failed else "transport error"
    return "ok"


@virtual_time
async def test_during_an_outage_connections_are_refused_so_the_client_knows_nothing_arrived() -> (
    None
):
    async with (
        FakeCapillary(faults=Faults(outage_during=(10.0, 20.0))) as fake,
        sandbox_client(fake, retry=None) as client,
    ):
        await client.points.issue_validation_code(MOBILE)  # at 0 s, on a keep-alive connection
        code = fake.state.otp_for("919777785205") or ""
        seen = []
        # 10.5 s in (the open connection was closed at 10 s), 19.5 s (the client's probe of
        # the down endpoint), 22 s (its next probe, 2 s after that one): after the outage.
        for pause in (10.5, 9.0, 2.5):
            await asyncio.sleep(pause)
            seen.append(await redeem_attempt(client, code))
    assert seen == ["connect failed", "connect failed", "ok"]
    assert fake.stats.requests == {VALIDATION_CODE: 1, REDEEM: 1}  # none during the outage
    assert len(fake.state.redemptions) == 1


@virtual_time
async def test_the_client_retries_through_an_outage_that_ends() -> None:
    loop = asyncio.get_running_loop()
    # Retries 2 s apart, no jitter, no budget: attempts at 0, 2, 4 and 6 s.
    retry = RetryPolicy(wait_initial=2.0, wait_max=2.0, jitter=lambda wait: wait, budget_ratio=None)
    async with (
        FakeCapillary(faults=Faults(outage_during=(0.0, 5.0))) as fake,
        sandbox_client(fake, retry=retry) as client,
    ):
        await client.points.issue_validation_code(MOBILE)
        code = fake.state.otp_for("919777785205") or ""
        done = await client.points.redeem(MOBILE, points=1, validation_code=code)
    assert loop.time() == pytest.approx(6.0)
    assert done.balance == 4999.0  # a refused connection is provably not applied: re-sent
    assert fake.stats.requests == {VALIDATION_CODE: 1, REDEEM: 1}


@virtual_time
async def test_healing_ends_an_outage_at_once() -> None:
    async with (
        FakeCapillary(faults=Faults(outage_during=(0.0, math.inf))) as fake,
        sandbox_client(fake, retry=None) as client,
    ):
        assert await redeem_attempt(client, "NOCODE") == "connect failed"
        await asyncio.sleep(3600)
        code = fake.state.issue_otp(fake.state.customers[0])  # 919777785205's, unsent
        assert await redeem_attempt(client, code) == "connect failed"
        fake.heal()
        await asyncio.sleep(2)  # the client probes the endpoint it knows down 2 s later
        assert await redeem_attempt(client, code) == "ok"
        fake.set_faults({"*": Faults(outage_during=(0.0, math.inf))})  # counted from the start
        # A moment for the client to see its keep-alive connection closed; a request sent on
        # it before then is a reset after sending, as with a real host going down.
        await asyncio.sleep(1)
        assert await redeem_attempt(client, code) == "connect failed"


def test_an_outage_must_be_the_same_for_every_endpoint() -> None:
    with pytest.raises(ValueError, match="whole sandbox"):
        FakeCapillary(faults={REDEEM: Faults(outage_during=(0.0, 1.0))})
    with pytest.raises(ValueError, match="whole sandbox"):
        FakeCapillary(
            faults={"*": Faults(outage_during=(0.0, 1.0)), REDEEM: Faults(reset_rate=1.0)}
        )
    fake = FakeCapillary(
        faults={"*": Faults(outage_during=(0.0, 1.0)), REDEEM: Faults(outage_during=(0.0, 1.0))}
    )
    assert fake.faults[REDEEM].outage_during == (0.0, 1.0)
