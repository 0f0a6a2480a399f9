"""Bulk calls: one outcome per input, bounded and lazy, in order on request, and clean when
the consumer leaves early. The narrow tests use a fake transport behind the seam."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Iterator

import orjson
import pytest
from multidict import CIMultiDict

from capillary_points_async import (
    ApiRequest,
    BasicAuth,
    CapillaryClient,
    CustomerNotFoundError,
    Identifier,
    InvalidRequestError,
    Outcome,
    RawResponse,
    RetryPolicy,
    TransferCheck,
    TransferCheckRequest,
    ValidationCodeRequest,
)

from ._clock import virtual_time
from ._scripted import ScriptedServer, sample, v2_error

OK_BODY = sample("istransferrable_page_200.json")
NOT_FOUND = orjson.dumps({"errors": [{"status": False, "code": 8015, "message": "not found"}]})


class FakeTransport:
    """Answers from a function of the request; counts what is in flight."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.in_flight = 0
        self.most_in_flight = 0
        self.sent = 0
        self.closed = False
        self.saturated = asyncio.Event()  # set when `saturate_at` calls are in flight
        self.saturate_at = 0

    async def send(self, request: ApiRequest) -> RawResponse:
        self.sent += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if self.in_flight == self.saturate_at:
            self.saturated.set()
        try:
            body = orjson.loads(request.body or b"{}")
            points = body.get("pointsTobeTransferred", 1)
            # Later inputs answer sooner, so completion order differs from input order.
            await asyncio.sleep(self.delay / points)
            value = body["fromCustomerIdentifier"]["value"]
            if value.startswith("missing"):
                return RawResponse(400, CIMultiDict({"X-Cap-Requestid": value}), NOT_FOUND)
            return RawResponse(200, CIMultiDict({"X-Cap-Requestid": value}), OK_BODY)
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        self.closed = True


def requests(count: int, missing_every: int = 0) -> Iterator[TransferCheckRequest]:
    for i in range(count):
        prefix = "missing" if missing_every and i % missing_every == 0 else "from"
        yield TransferCheckRequest(
            from_customer=Identifier.mobile(f"{prefix}-{i}"),
            to_customer=Identifier.mobile("to"),
            points=i + 1,
        )


def client_with(transport: FakeTransport) -> CapillaryClient:
    return CapillaryClient(
        "http://127.0.0.1:9",
        BasicAuth("till", "pw"),
        rate_limit=None,
        retry=RetryPolicy(max_attempts=1),
        transport=transport,
    )


@virtual_time
async def test_every_input_gets_exactly_one_outcome() -> None:
    transport = FakeTransport(delay=1.0)
    async with client_with(transport) as client:
        outcomes = [
            o async for o in client.points.is_transferrable_many(requests(500, 7), concurrency=16)
        ]
    assert len(outcomes) == 500
    by_value = {o.request.from_customer.value: o for o in outcomes}
    assert len(by_value) == 500
    failed = [o for o in outcomes if not o.ok]
    assert len(failed) == len(range(0, 500, 7))
    assert all(isinstance(o.error, CustomerNotFoundError) and o.value is None for o in failed)
    assert all(o.value is not None and o.value.transferrable for o in outcomes if o.ok)
    assert all(o.attempts == 1 for o in outcomes)
    assert transport.most_in_flight == 16


@virtual_time
async def test_unordered_yields_as_completed_and_ordered_keeps_input_order() -> None:
    async with client_with(FakeTransport(delay=1.0)) as client:
        unordered = [
            o async for o in client.points.is_transferrable_many(requests(50), concurrency=10)
        ]
        ordered = [
            o
            async for o in client.points.is_transferrable_many(
                requests(50), concurrency=10, ordered=True
            )
        ]
    index = [int(o.request.from_customer.value.split("-")[1]) for o in unordered]
    assert sorted(index) == list(range(50))
    assert index != list(range(50))
    assert [int(o.request.from_customer.value.split("-")[1]) for o in ordered] == list(range(50))


@pytest.mark.parametrize(("ordered", "window"), [(False, 2 * 8), (True, 4 * 8)])
@virtual_time
async def test_input_is_read_lazily_with_bounded_look_ahead(ordered: bool, window: int) -> None:
    consumed = yielded = most_ahead = 0

    def counting() -> Iterator[TransferCheckRequest]:
        nonlocal consumed
        for request in requests(10_000):
            consumed += 1
            yield request

    async with (
        client_with(FakeTransport(delay=1.0)) as client,
        contextlib.aclosing(
            client.points.is_transferrable_many(counting(), concurrency=8, ordered=ordered)
        ) as outcomes,
    ):
        async for _ in outcomes:
            yielded += 1
            most_ahead = max(most_ahead, consumed - yielded)
            # A consumer slower than the calls: inputs must wait for it, not pile up.
            await asyncio.sleep(1.0)
            if yielded == 100:
                break
    assert most_ahead < window
    assert consumed <= 100 + window


@virtual_time
async def test_concurrency_one_starts_nothing_before_the_consumer_has_the_outcome() -> None:
    # A caller that stops at the first fatal error (the CLI on a 401) sends nothing more.
    transport = FakeTransport(delay=1.0)
    async with (
        client_with(transport) as client,
        contextlib.aclosing(
            client.points.is_transferrable_many(requests(10), concurrency=1)
        ) as outcomes,
    ):
        async for _ in outcomes:
            break
    assert transport.sent == 1


@virtual_time
async def test_a_failing_input_is_raised_after_the_outcomes_already_started() -> None:
    def failing() -> Iterator[TransferCheckRequest]:
        yield from requests(20)
        raise ValueError("the input broke")

    transport = FakeTransport(delay=1.0)
    outcomes: list[Outcome[TransferCheckRequest, TransferCheck]] = []
    async with client_with(transport) as client:

        async def consume() -> None:
            async for outcome in client.points.is_transferrable_many(failing(), concurrency=8):
                outcomes.append(outcome)  # noqa: PERF401 - a comprehension loses them on error

        with pytest.raises(ValueError, match="the input broke"):
            await consume()
        assert transport.in_flight == 0
    assert len(outcomes) == transport.sent == 20
    assert all(o.ok for o in outcomes)
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


@virtual_time
async def test_async_iterable_input_and_wrong_items_become_error_outcomes() -> None:
    async def source() -> AsyncIterator[object]:
        yield next(requests(1))
        yield "not a request"
        yield ValidationCodeRequest(Identifier.mobile("919777785205"))

    async with client_with(FakeTransport()) as client:
        outcomes = [
            o
            async for o in client.points.is_transferrable_many(source(), ordered=True)  # type: ignore[arg-type]
        ]
    assert [o.ok for o in outcomes] == [True, False, False]
    assert all(isinstance(o.error, InvalidRequestError) and o.attempts == 0 for o in outcomes[1:])
    assert outcomes[1].request == "not a request"


@virtual_time
async def test_breaking_out_cancels_in_flight_requests() -> None:
    transport = FakeTransport(delay=100.0)
    async with client_with(transport) as client:
        async with contextlib.aclosing(
            client.points.is_transferrable_many(requests(1000), concurrency=32)
        ) as outcomes:
            async for _ in outcomes:
                break
        assert transport.in_flight == 0
    assert transport.sent < 100


@virtual_time
async def test_cancelling_the_consumer_cancels_in_flight_requests() -> None:
    transport = FakeTransport(delay=100.0)
    transport.saturate_at = 32
    async with client_with(transport) as client:

        async def consume() -> None:
            async for _ in client.points.is_transferrable_many(requests(1000), concurrency=32):
                pass

        task = asyncio.create_task(consume())
        await transport.saturated.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert transport.in_flight == 0
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


@virtual_time
async def test_closing_the_client_stops_an_abandoned_iterator() -> None:
    transport = FakeTransport(delay=100.0)
    client = client_with(transport)
    async with client:
        outcomes = client.points.is_transferrable_many(requests(1000), concurrency=8)
        await anext(outcomes)
    assert transport.in_flight == 0
    assert transport.closed
    del outcomes
    gc.collect()


def test_bad_concurrency_or_input_raise_at_once() -> None:
    client = client_with(FakeTransport())
    with pytest.raises(InvalidRequestError):
        client.points.is_transferrable_many(requests(1), concurrency=0)
    with pytest.raises(InvalidRequestError):
        client.points.is_transferrable_many(42, concurrency=1)  # type: ignore[arg-type]


async def test_bulk_against_a_real_server_accounts_for_every_input() -> None:
    async with ScriptedServer() as server:
        server.script(
            "/v2/points/isTransferrable", v2_error(8015, "not found"), v2_error(3316, "group")
        )
        async with CapillaryClient(server.url, BasicAuth("till", "pw"), rate_limit=None) as client:
            outcomes = [
                o
                async for o in client.points.is_transferrable_many(
                    requests(40), concurrency=8, ordered=True
                )
            ]
            codes = [
                o
                async for o in client.points.issue_validation_code_many(
                    [ValidationCodeRequest(Identifier.mobile("919777785205"), 5)] * 5
                )
            ]
    assert len(outcomes) == 40
    assert sum(not o.ok for o in outcomes) == 2
    assert all(o.ok and o.value is not None and o.value.item_status.success for o in codes)
    assert len(server.seen) == 45
