"""Broken and hostile answers: whatever status, headers and body come back, a call ends in its
result or in a CapillaryError, within its own time budget and in bounded memory.

The property tests drive the client's real call path (decode, quota headers, cooldown,
retries, structuring) behind a fake transport on the fake loop clock; the body-size tests use
a real local aiohttp server, since what is bounded is what crosses the wire.
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import json
import pydoc
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from capillary_points_async import (
    ApiRequest,
    BasicAuth,
    CapillaryClient,
    CapillaryError,
    Identifier,
    RateLimit,
    RateLimitedError,
    RawResponse,
    ResponseDecodeError,
    RetryPolicy,
    TransferCheck,
    TransferCheckRequest,
    ValidationCode,
)

from ._clock import virtual_time
from ._scripted import sample

AUTH = BasicAuth("till_user", "till-password")
VC_SAMPLE = orjson.loads(sample("validationcode_page_200.json"))
TC_SAMPLE = orjson.loads(sample("istransferrable_page_200.json"))
OK_TC = RawResponse(
    200, CIMultiDict({"X-Cap-Requestid": "ok"}), sample("istransferrable_page_200.json")
)
# Out-of-range HTTP dates that made email.utils raise OverflowError (found by schemathesis).
OVERFLOWING_DATES = (
    "Mon, 00 Jan 2147483648 00:00:00 GMT",
    "Mon, 34 Jan 20958008843 29:27:23 -0000",
)
RETRY_HEADERS = ("Retry-After", "RateLimit-Reset", "X-RateLimit-Reset")


class QueueTransport:
    """Answers each request with the next queued response, then with ``default``."""

    def __init__(self, *answers: RawResponse, default: RawResponse = OK_TC) -> None:
        self.answers = deque(answers)
        self.default = default
        self.sent: list[float] = []  # loop times of the sends

    async def send(self, request: ApiRequest) -> RawResponse:
        self.sent.append(asyncio.get_running_loop().time())
        return self.answers.popleft() if self.answers else self.default

    async def aclose(self) -> None:
        pass


def answer(status: int, body: bytes = b"", **headers: str) -> RawResponse:
    return RawResponse(
        status, CIMultiDict({k.replace("_", "-"): v for k, v in headers.items()}), body
    )


def client_for(transport: QueueTransport, **kwargs: Any) -> CapillaryClient:
    kwargs.setdefault("rate_limit", None)
    return CapillaryClient("http://127.0.0.1:9", AUTH, transport=transport, **kwargs)


async def check(client: CapillaryClient) -> TransferCheck:
    return await client.points.is_transferrable(
        from_customer=Identifier.mobile("9777785206"),
        to_customer=Identifier.mobile("9777785207"),
        points=1,
    )


def check_requests(count: int) -> Iterator[TransferCheckRequest]:
    for i in range(count):
        yield TransferCheckRequest(
            from_customer=Identifier.mobile(f"97777852{i:02d}"),
            to_customer=Identifier.mobile("9777785299"),
            points=1,
        )


# --------------------------------------------------------------------------- strategies

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated(draw: st.DrawFn, document: Any) -> bytes:
    """A doc sample with a few subtrees replaced by arbitrary JSON: answers that are almost
    the documented envelope, where a decoder is most likely to trip."""
    doc = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        node = doc
        while isinstance(node, (dict, list)) and node:
            key: Any = (
                draw(st.sampled_from(sorted(node)))
                if isinstance(node, dict)
                else draw(st.integers(0, len(node) - 1))
            )
            if draw(st.booleans()) or not isinstance(node[key], (dict, list)):
                node[key] = draw(json_values)
                break
            node = node[key]
    # json, not orjson: it writes NaN and integers past 64 bits, which orjson refuses to read.
    return json.dumps(doc).encode()


http_dates = st.builds(
    "{}, {:02d} {} {} {:02d}:{:02d}:{:02d} {}".format,
    st.sampled_from(["Mon", "Tue", "Sun"]),
    st.integers(0, 99),
    st.sampled_from(["Jan", "Feb", "Dec", "Foo"]),
    st.integers(0, 10**12),
    st.integers(0, 99),
    st.integers(0, 99),
    st.integers(0, 99),
    st.sampled_from(["GMT", "-0000", "+0530", ""]),
)
header_values = (
    st.sampled_from(OVERFLOWING_DATES)
    | http_dates
    | st.integers(-(10**20), 10**20).map(str)
    | st.floats().map(str)
    | st.text(max_size=30)
)
headers = st.dictionaries(
    st.sampled_from(
        [
            *RETRY_HEADERS,
            "X-RateLimit-Remaining",
            "RateLimit-Remaining",
            "X-Cap-Requestid",
            "Content-Type",
        ]
    ),
    header_values,
    max_size=4,
)
statuses = st.sampled_from([200, 201, 400, 401, 404, 429, 500, 502, 503, 521]) | st.integers(
    100, 599
)


def bodies(document: Any) -> st.SearchStrategy[bytes]:
    return (
        mutated(document)
        | json_values.map(lambda v: json.dumps(v).encode())
        | st.binary(max_size=64)
        | st.just(json.dumps(document).encode()[:200])  # cut short mid-body
    )


ENDPOINTS = {
    "validationcode": (VC_SAMPLE, ValidationCode),
    "isTransferrable": (TC_SAMPLE, TransferCheck),
}


async def call(client: CapillaryClient, endpoint: str) -> Any:
    if endpoint == "validationcode":
        return await client.points.issue_validation_code(Identifier.mobile("919777785205"), 10)
    return await check(client)


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_answer_ends_in_a_result_or_a_capillary_error(endpoint: str, data: Any) -> None:
    document, model = ENDPOINTS[endpoint]
    raw = answer(data.draw(statuses), data.draw(bodies(document)), **data.draw(headers))
    retry = RetryPolicy(max_attempts=data.draw(st.integers(1, 3)), jitter=lambda wait: wait)

    @virtual_time
    async def run() -> None:
        transport = QueueTransport(default=raw)
        async with client_for(transport, retry=retry) as client:
            try:
                result = await call(client, endpoint)
            except CapillaryError:
                return
            assert isinstance(result, model)

    run()


@settings(max_examples=40, deadline=None)
@given(status=statuses, body=bodies(TC_SAMPLE), header_map=headers)
def test_any_answer_gives_one_outcome_per_input_in_bulk(
    status: int, body: bytes, header_map: dict[str, str]
) -> None:
    raw = answer(status, body, **header_map)

    @virtual_time
    async def run() -> None:
        transport = QueueTransport(default=raw)
        async with client_for(transport, retry=None) as client:
            outcomes = [o async for o in client.points.is_transferrable_many(check_requests(3))]
        assert len(outcomes) == 3
        assert all(o.ok or isinstance(o.error, CapillaryError) for o in outcomes)

    run()


@pytest.mark.parametrize("header", RETRY_HEADERS)
@pytest.mark.parametrize("date", OVERFLOWING_DATES)
@virtual_time
async def test_an_out_of_range_date_in_a_429_does_not_end_a_bulk_run(
    header: str, date: str
) -> None:
    transport = QueueTransport(answer(429, b"", **{header: date}))
    async with client_for(
        transport, retry=RetryPolicy(max_attempts=2, jitter=lambda w: w)
    ) as client:
        outcomes = [o async for o in client.points.is_transferrable_many(check_requests(4))]
    assert len(outcomes) == 4
    assert all(o.ok for o in outcomes)  # the 429 was retried after the policy's own backoff


# --------------------------------------------------------------------------- Retry-After


@virtual_time
async def test_a_negative_retry_after_is_absent_and_backoff_applies() -> None:
    too_many = answer(429, b"", Retry_After="-5")
    transport = QueueTransport(too_many, too_many, too_many)
    policy = RetryPolicy(max_attempts=4, wait_initial=1.0, jitter=lambda wait: wait)
    async with client_for(transport, retry=policy) as client:
        assert (await check(client)).transferrable
    # Read as "no wait", the 4 attempts left in the same instant; backoff spaces them 1, 2, 4 s.
    assert transport.sent == [0.0, 1.0, 3.0, 7.0]


@virtual_time
async def test_a_huge_retry_after_fails_later_calls_at_once_too() -> None:
    loop = asyncio.get_running_loop()
    transport = QueueTransport(answer(429, b"", Retry_After="999999999", X_Cap_Requestid="r-429"))
    async with client_for(transport) as client:  # default policy: max_time 60, max_retry_after 120
        with pytest.raises(RateLimitedError) as first:
            await check(client)
        assert first.value.retry_after == 999999999
        assert first.value.request_id == "r-429"
        started = loop.time()
        for _ in range(3):
            with pytest.raises(RateLimitedError) as later:
                await check(client)
            # fails at once, saying how long the pause still holds
            assert loop.time() == started
            assert later.value.retry_after == pytest.approx(120.0)
            assert "nothing was sent" in str(later.value)
        assert len(transport.sent) == 1
        assert client.stats.errors == 4


@virtual_time
async def test_a_cooldown_longer_than_max_time_fails_at_once_and_a_shorter_one_is_waited() -> None:
    loop = asyncio.get_running_loop()
    policy = RetryPolicy(max_time=10.0, max_attempts=1)
    transport = QueueTransport(
        answer(429, b"", Retry_After="30"), answer(429, b"", Retry_After="5")
    )
    async with client_for(transport, retry=policy) as client:
        with pytest.raises(RateLimitedError):
            await check(client)
        with pytest.raises(RateLimitedError) as caught:
            await check(client)  # 30 s of cooldown left, 10 s of budget: no wait
        assert loop.time() == 0.0
        assert caught.value.retry_after == pytest.approx(30.0)
        await asyncio.sleep(25.0)  # virtual: 5 s of the cooldown left, within the budget
        with pytest.raises(RateLimitedError):
            await check(client)  # waits the 5 s, then meets the second 429 (5 s more)
        assert loop.time() == pytest.approx(30.0)
        assert (await check(client)).transferrable  # waits those 5 s
        assert loop.time() == pytest.approx(35.0)
    assert len(transport.sent) == 3


# --------------------------------------------------------------------------- before sending


class FailingLimiter:
    """A limiter whose backend is down: every acquire fails before anything is sent."""

    async def acquire(self, key: str, limit: RateLimit | None) -> None:
        raise CapillaryError("limiter backend unavailable")

    async def cool_down(self, key: str, seconds: float) -> None:
        pass

    async def aclose(self) -> None:
        pass


async def test_failures_before_sending_count_as_errors_with_no_attempt() -> None:
    transport = QueueTransport()
    async with client_for(transport, limiter=FailingLimiter()) as client:
        outcomes = [o async for o in client.points.is_transferrable_many(check_requests(3))]
    assert [o.attempts for o in outcomes] == [0, 0, 0]
    assert all(isinstance(o.error, CapillaryError) for o in outcomes)
    assert (client.stats.errors, client.stats.requests, len(transport.sent)) == (3, 0, 0)


def test_help_names_the_attributes_everyone_uses() -> None:
    text = pydoc.render_doc(CapillaryClient, renderer=pydoc.plaintext)
    assert "points: the endpoints" in text
    assert "stats: :class:`ClientStats`" in text


# --------------------------------------------------------------------------- body size

LIMIT = 64 * 1024


class BodyServer:
    """A local server with answers no real Capillary gives: endless, huge, or a gzip bomb."""

    def __init__(self) -> None:
        self.streamed = 0  # bytes the endless answer managed to write
        app = web.Application()
        app.router.add_post("/v2/points/isTransferrable", self.endless)
        app.router.add_post("/huge/v2/points/isTransferrable", self.huge)
        app.router.add_post("/bomb/v2/points/isTransferrable", self.bomb)
        app.router.add_post("/fits/v2/points/isTransferrable", self.fits)
        self.server = TestServer(app, host="127.0.0.1")

    async def endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"X-Cap-Requestid": "endless"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b" " * 16384
        # Bounded, as every load a test makes must be: 64 MiB, 1,000 times the client's cap.
        for _ in range(4096):
            try:
                await response.write(chunk)
            except (ConnectionError, RuntimeError):
                break
            self.streamed += len(chunk)
        return response

    async def huge(self, request: web.Request) -> web.Response:
        return web.Response(body=b" " * (LIMIT * 20), headers={"X-Cap-Requestid": "huge"})

    async def bomb(self, request: web.Request) -> web.Response:
        body = gzip.compress(b"[" + b" " * (LIMIT * 50) + b"]")
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})

    async def fits(self, request: web.Request) -> web.Response:
        padded = sample("istransferrable_page_200.json").ljust(LIMIT, b" ")
        return web.Response(body=padded, content_type="application/json")


@pytest.fixture
async def body_server() -> AsyncIterator[BodyServer]:
    server = BodyServer()
    await server.server.start_server()
    try:
        yield server
    finally:
        await server.server.close()


@pytest.mark.parametrize(
    ("prefix", "detail"),
    [("", "bytes read"), ("/huge", f"Content-Length {LIMIT * 20}"), ("/bomb", "bytes read")],
    ids=["endless-chunked", "content-length-over", "gzip-bomb"],
)
async def test_an_answer_larger_than_max_response_bytes_is_not_read(
    body_server: BodyServer, prefix: str, detail: str
) -> None:
    url = str(body_server.server.make_url(prefix))
    async with CapillaryClient(
        url, AUTH, rate_limit=None, retry=None, max_response_bytes=LIMIT
    ) as client:
        with pytest.raises(ResponseDecodeError) as caught:
            await check(client)
    assert f"max_response_bytes={LIMIT}" in str(caught.value)
    assert detail in str(caught.value)
    assert caught.value.retryable is False
    # The endless answer stopped when the client hung up, far before its 64 MiB.
    assert body_server.streamed < 64 * LIMIT


async def test_an_answer_of_exactly_max_response_bytes_is_read(body_server: BodyServer) -> None:
    url = str(body_server.server.make_url("/fits"))
    async with CapillaryClient(url, AUTH, rate_limit=None, max_response_bytes=LIMIT) as client:
        assert (await check(client)).transferrable


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "4MiB"])
def test_max_response_bytes_must_be_a_positive_whole_number(value: Any) -> None:
    with pytest.raises(ValueError, match="max_response_bytes"):
        CapillaryClient("http://127.0.0.1:9", AUTH, max_response_bytes=value)
