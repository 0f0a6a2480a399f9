"""The outage breaker on its own, on the fake loop clock: who may send while an endpoint is
down, when the next probe goes, and when waiting bulk inputs go on or give up."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from capillary_points_async import (
    BasicAuth,
    CapillaryClient,
    CustomerNotFoundError,
    Identifier,
    InvalidRequestError,
    RateLimit,
    RateLimitedError,
    RedeemRequest,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
    TransferCheckRequest,
    TransportError,
)
from capillary_points_async._outage import Outages, is_outage_error
from capillary_points_async.testing import IS_TRANSFERRABLE, FakeCapillary, Faults

from ._clock import virtual_time

KEY = "v2/points/isTransferrable"
REFUSED = TransportError("connection refused", connect_failed=True)
TRANSFER: dict[str, Any] = {
    "from_customer": Identifier.mobile("918000000000"),
    "to_customer": Identifier.mobile("918000000001"),
    "points": 1,
}


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (REFUSED, True),
        (TransportError("timed out"), True),
        (ServerError("bad gateway", status=502, code=502), True),
        (ServerError("busy customer", status=200, code=521), False),
        (ServerError("busy customer", status=521, code=521), False),
        (CustomerNotFoundError("not found", status=400, code=8015), False),
        (RateLimitedError("slow down", status=429), False),
        (ResponseDecodeError("not json", status=200), False),
    ],
)
def test_what_counts_as_an_outage(error: Exception, outage: bool) -> None:
    assert is_outage_error(error) is outage  # type: ignore[arg-type]


def test_single_calls_fail_at_once_while_down_except_the_probe() -> None:
    outages = Outages()
    assert outages.admit(KEY, 0.0) is False  # up: no question asked
    outages.settle(KEY, REFUSED, 0.0, probe=False)
    assert outages.down_since(KEY) == 0.0
    with pytest.raises(TransportError, match=r"is down .* last error: connection refused") as e:
        outages.admit(KEY, 0.5)
    assert e.value.connect_failed is True  # this call was never sent
    assert outages.admit(KEY, 1.0) is True  # the first probe is due after 1 s: this call
    with pytest.raises(TransportError):
        outages.admit(KEY, 1.1)  # one probe at a time
    outages.settle(KEY, REFUSED, 1.15, probe=False)  # a call sent before: moves nothing
    outages.settle(KEY, REFUSED, 1.2, probe=True)  # the probe failed: the next in 2 s
    with pytest.raises(TransportError):
        outages.admit(KEY, 3.1)
    assert outages.admit(KEY, 3.2) is True
    answered = CustomerNotFoundError("no", status=400, code=8015)
    outages.settle(KEY, answered, 3.3, probe=True)  # an answer: up again
    assert outages.down_since(KEY) is None
    assert outages.admit(KEY, 3.4) is False


def test_a_server_error_is_copied_with_its_status() -> None:
    outages = Outages()
    gateway = ServerError("gateway", status=502, code=502, request_id="r")
    outages.settle(KEY, gateway, 0.0, probe=False)
    with pytest.raises(ServerError) as caught:
        outages.admit(KEY, 0.1)
    assert (caught.value.status, caught.value.request_id) == (502, "r")


def test_probes_back_off_to_thirty_seconds() -> None:
    outages = Outages()
    outages.settle(KEY, REFUSED, 0.0, probe=False)
    now, gaps = 0.0, []
    for _ in range(8):
        due = now
        while True:
            try:
                outages.admit(KEY, due)
                break
            except TransportError:
                due += 0.25
        gaps.append(due - now)
        now = due
        outages.settle(KEY, REFUSED, now, probe=True)
    assert gaps == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_a_probe_that_learnt_nothing_lets_the_next_caller_probe() -> None:
    outages = Outages()
    outages.settle(KEY, REFUSED, 0.0, probe=False)
    assert outages.admit(KEY, 1.0) is True
    outages.abandon(KEY)  # cancelled
    assert outages.admit(KEY, 1.0) is True
    outages.settle(KEY, ResponseDecodeError("?", status=200), 1.0, probe=True)
    assert outages.admit(KEY, 1.0) is True


@virtual_time
async def test_waiting_inputs_go_on_one_probe_at_a_time_and_all_when_it_is_up() -> None:
    loop = asyncio.get_running_loop()
    outages = Outages()
    outages.settle(KEY, REFUSED, loop.time(), probe=False)
    released: list[tuple[float, bool]] = []

    async def bulk_input() -> None:
        error, probe = await outages.wait(KEY, max_outage=600.0)
        assert error is None
        released.append((loop.time(), probe))

    waiters = [asyncio.create_task(bulk_input()) for _ in range(5)]
    await asyncio.sleep(1.5)
    assert len(released) == 1  # the first probe, at 1 s
    assert released[0] == (pytest.approx(1.0), True)
    outages.settle(KEY, REFUSED, loop.time(), probe=True)  # failed at 1.5 s: next at 3.5 s
    await asyncio.sleep(2.5)
    assert released == [(pytest.approx(1.0), True), (pytest.approx(3.5), True)]
    outages.up(KEY)  # the second probe was answered at 4 s
    await asyncio.gather(*waiters)
    assert released[2:] == [(pytest.approx(4.0), False)] * 3


@virtual_time
async def test_inputs_give_up_once_the_outage_lasts_max_outage() -> None:
    loop = asyncio.get_running_loop()
    outages = Outages()
    outages.settle(KEY, REFUSED, 0.0, probe=False)
    outages.admit(KEY, 1.0)  # a probe that never ends holds the turn
    error, probe = await outages.wait(KEY, max_outage=10.0)
    assert probe is False
    assert isinstance(error, TransportError)
    assert loop.time() == pytest.approx(10.0)
    assert "last error: connection refused" in str(error)


# --------------------------------------------------------------------------- through the client


def sandbox_client(fake: FakeCapillary, **kwargs: Any) -> CapillaryClient:
    kwargs.setdefault("retry", RetryPolicy(max_attempts=2, wait_initial=0.1, wait_max=0.1))
    kwargs.setdefault("rate_limit", RateLimit(10, per=1.0))
    return CapillaryClient(fake.url, BasicAuth("sandbox", "sandbox"), **kwargs)


def checks(count: int) -> list[TransferCheckRequest]:
    return [
        TransferCheckRequest(
            from_customer=Identifier.mobile(f"918{i:09d}"),
            to_customer=Identifier.mobile(f"918{i + 1:09d}"),
            points=1,
        )
        for i in range(count)
    ]


@virtual_time
async def test_a_bulk_run_pauses_through_an_outage_and_fails_nothing() -> None:
    loop = asyncio.get_running_loop()
    async with (
        FakeCapillary(customers=101, faults=Faults(outage_during=(3.0, 13.0))) as fake,
        sandbox_client(fake) as client,
    ):
        outcomes = [o async for o in client.points.is_transferrable_many(checks(100))]
        ended = loop.time()
    assert [o.error for o in outcomes if not o.ok] == []
    assert len(outcomes) == 100
    assert fake.stats.requests[IS_TRANSFERRABLE] == 100  # refused connections arrive nowhere
    # 10/s: 30 before the outage, the rest after it (13 s) plus the last probe's backoff.
    assert 13.0 + 7.0 <= ended <= 13.0 + 7.0 + 16.0
    assert client.stats.errors > 0  # the calls the outage took, then re-sent
    assert client.stats.outages == 1
    # Down from when a call's last attempt was refused (after 3 s) until a probe after 13 s
    # was answered: not the whole run.
    assert 7.0 <= client.stats.down_time <= ended - 3.0


@virtual_time
async def test_every_input_the_outage_held_back_is_counted_once() -> None:
    async with (
        FakeCapillary(customers=101, faults=Faults(outage_during=(0.0, 10.0))) as fake,
        sandbox_client(fake, rate_limit=None) as client,
    ):
        # All 100 go at once into the outage; each then waits, some of them again and again
        # as failed probes, and is counted once.
        many = client.points.is_transferrable_many(checks(100), concurrency=100)
        during = [o async for o in many]
        assert client.stats.outage_paused == 100
        after = [o async for o in client.points.is_transferrable_many(checks(10))]
    assert all(o.ok for o in during + after)
    assert client.stats.outage_paused == 100  # the endpoint was up for the second run
    assert client.stats.outages == 1


@virtual_time
async def test_the_outage_view_tells_what_the_client_knows_and_nothing_once_up() -> None:
    loop = asyncio.get_running_loop()
    async with (
        FakeCapillary(customers=3, faults=Faults(outage_during=(0.0, 10.0))) as fake,
        sandbox_client(fake) as client,
    ):
        assert client.outage(KEY) is None
        with pytest.raises(TransportError):
            await client.points.is_transferrable(**TRANSFER)
        went_down = loop.time()
        await asyncio.sleep(0.5)
        outage = client.outage("v2/points/isTransferable")  # the one-r spelling is accepted
        assert outage is not None
        assert outage.endpoint == KEY
        assert outage.error.connect_failed  # type: ignore[attr-defined]
        assert outage.down_for == pytest.approx(0.5)
        assert (outage.failed_probes, outage.next_probe_in) == (0, pytest.approx(0.5))
        assert client.stats.down_time == pytest.approx(0.5)
        await asyncio.sleep(10.0)  # the sandbox is back; the next call probes and is answered
        await client.points.is_transferrable(**TRANSFER)
        assert client.outage(KEY) is None
        assert client.stats.down_time == pytest.approx(loop.time() - went_down)
        assert client.stats.outages == 1
        assert client.stats.outage_paused == 0  # single calls are never paused
        with pytest.raises(InvalidRequestError, match="unknown endpoint key"):
            client.outage("v2/points/nowhere")


@virtual_time
async def test_inputs_fail_once_the_outage_outlasts_max_outage() -> None:
    async with (
        FakeCapillary(customers=21, faults=Faults(outage_during=(0.0, 100.0))) as fake,
        sandbox_client(fake) as client,
    ):
        loop = asyncio.get_running_loop()
        outcomes = [
            o async for o in client.points.is_transferrable_many(checks(20), max_outage=5.0)
        ]
        ended = loop.time()
    assert all(isinstance(o.error, TransportError) for o in outcomes)
    assert all(o.error.connect_failed for o in outcomes)  # type: ignore[union-attr]
    assert 5.0 <= ended < 8.0  # failed past max_outage, not after the outage's 100 s


@virtual_time
async def test_without_max_outage_inputs_fail_fast_while_down() -> None:
    async with (
        FakeCapillary(customers=21, faults=Faults(outage_during=(0.0, 100.0))) as fake,
        sandbox_client(fake) as client,
    ):
        loop = asyncio.get_running_loop()
        outcomes = [
            o
            async for o in client.points.is_transferrable_many(
                checks(20), concurrency=1, max_outage=None
            )
        ]
        assert loop.time() < 1.0
    assert all(isinstance(o.error, TransportError) for o in outcomes)
    # The first input's two attempts found the endpoint down; the others were never sent.
    assert [o.attempts for o in outcomes] == [2] + [0] * 19
    assert client.stats.requests == 2


@virtual_time
async def test_a_redeem_refused_by_an_outage_is_paused_and_sent_once_it_is_over() -> None:
    async with (
        FakeCapillary(customers=3, faults=Faults(outage_during=(0.0, 4.0))) as fake,
        sandbox_client(fake) as client,
    ):
        customer = fake.state.customers[0]
        code = fake.state.issue_otp(customer)
        request = RedeemRequest(Identifier.mobile(customer.mobile), points=1, validation_code=code)
        [outcome] = [o async for o in client.points.redeem_many([request])]
    assert outcome.ok, outcome.error
    assert len(fake.state.redemptions) == 1  # refused connections: provably not applied


@virtual_time
async def test_a_single_call_fails_at_once_while_the_endpoint_is_down() -> None:
    loop = asyncio.get_running_loop()
    async with (
        FakeCapillary(customers=3, faults=Faults(outage_during=(0.0, 10.0))) as fake,
        sandbox_client(fake) as client,
    ):
        [request] = checks(1)
        call = client.points.is_transferrable
        args = {"from_customer": request.from_customer, "to_customer": request.to_customer}
        with pytest.raises(TransportError):
            await call(**args, points=1)  # its retries fail: the endpoint is down
        sent = client.stats.requests
        started = loop.time()
        with pytest.raises(TransportError, match="is down"):
            await call(**args, points=1)
        assert (loop.time(), client.stats.requests) == (started, sent)  # at once, unsent
        await asyncio.sleep(12.0)  # past the outage and the next probe's time
        assert (await call(**args, points=1)).transferrable is not None
        assert (await call(**args, points=1)).transferrable is not None  # up again
