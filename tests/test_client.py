"""The client end to end against a real local HTTP server: what crosses the wire, each error
family, retries, Retry-After and the shared cooldown, timeouts, cancellation and secrets."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import attrs
import pytest

from capillary_points_async import (
    APIError,
    AuthenticationError,
    BasicAuth,
    CapillaryClient,
    CustomerNotFoundError,
    Identifier,
    InProcessRateLimiter,
    InvalidRequestError,
    RateLimit,
    RateLimitedError,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
    TransferCheckRequest,
    TransportError,
)
from capillary_points_async._endpoints import IS_TRANSFERRABLE

from ._scripted import TC_PATH, VC_PATH, Reply, ScriptedServer, v2_error

PASSWORD = "s3cret-Pa55"
DIGEST = hashlib.md5(PASSWORD.encode()).hexdigest()
AUTH = BasicAuth("till_user", PASSWORD)
# Retries that cost milliseconds: these tests exercise the decisions, not the waiting.
FAST_RETRY = RetryPolicy(max_attempts=4, wait_initial=0.001, wait_max=0.002, max_time=10.0)


class SignallingLimiter(InProcessRateLimiter):
    """The default limiter, telling the test when a cooldown has begun."""

    __slots__ = ("cooled",)

    def __init__(self) -> None:
        super().__init__()
        self.cooled = asyncio.Event()

    async def cool_down(self, key: str, seconds: float) -> None:
        await super().cool_down(key, seconds)
        self.cooled.set()


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with ScriptedServer() as scripted:
        yield scripted


def make_client(server: ScriptedServer, **kwargs: Any) -> CapillaryClient:
    kwargs.setdefault("rate_limit", None)
    kwargs.setdefault("retry", FAST_RETRY)
    return CapillaryClient(server.url, AUTH, **kwargs)


async def check(client: CapillaryClient) -> Any:
    return await client.points.is_transferrable(
        from_customer=Identifier.mobile("9777785206"),
        to_customer=Identifier.mobile("9777785207"),
        points=1,
        program_id=973,
    )


async def test_validation_code_request_and_result(server: ScriptedServer) -> None:
    async with make_client(server) as client:
        code = await client.points.issue_validation_code(
            Identifier.mobile("919777785205"), points=100
        )
    assert code.mobile == "919777785205"
    assert code.item_status.success is True
    assert code.item_status.message == "Validation Code Issued by SMS"
    assert code.request_id == "vc-1"
    (seen,) = server.seen
    assert (seen.method, seen.path) == ("GET", VC_PATH)
    assert seen.query == {"mobile": "919777785205", "points": "100", "format": "json"}
    assert (
        seen.headers["Authorization"]
        == "Basic " + base64.b64encode(f"till_user:{DIGEST}".encode()).decode()
    )
    assert seen.headers["Accept"] == "application/json"
    assert seen.headers["User-Agent"].startswith("capillary-points-async/")


async def test_transfer_check_request_and_result(server: ScriptedServer) -> None:
    async with make_client(server) as client:
        result = await check(client)
    assert result.transferrable is True
    assert result.points == 1.0
    assert result.request_id == "tc-1"
    assert result.transfer_from.profiles[0].identifiers[0].value == "919777785206"
    (seen,) = server.seen
    assert (seen.method, seen.path) == ("POST", TC_PATH)
    assert seen.headers["Content-Type"] == "application/json"
    assert json.loads(seen.body) == {
        "pointsTobeTransferred": 1,
        "groupProgramTransfer": False,
        "programId": 973,
        "fromCustomerIdentifier": {"type": "MOBILE", "value": "9777785206"},
        "toCustomerIdentifier": {"type": "MOBILE", "value": "9777785207"},
        "issueOtp": False,
    }


async def test_base_url_with_path_prefix_and_trailing_slash(server: ScriptedServer) -> None:
    server.defaults["/prefix" + TC_PATH] = server.defaults[TC_PATH]
    async with CapillaryClient(server.url + "/prefix/", AUTH, rate_limit=None) as client:
        await check(client)
    assert server.seen[0].path == "/prefix" + TC_PATH


@pytest.mark.parametrize(
    ("reply", "error", "code"),
    [
        (
            v2_error(8015, "Costumer not found for the given identifiers"),
            CustomerNotFoundError,
            8015,
        ),
        (v2_error(401, "Unauthorized", status=401), AuthenticationError, 401),
        (v2_error(9999, "Something new"), APIError, 9999),
        (
            # JSON of the wrong shape would come back the same: not retried.
            Reply(status=200, body='{"data": []}', headers={"X-Cap-Requestid": "shape"}),
            ResponseDecodeError,
            None,
        ),
    ],
)
async def test_error_families_are_not_retried(
    server: ScriptedServer, reply: Reply, error: type[Exception], code: int | None
) -> None:
    server.script(TC_PATH, reply, reply, reply)
    async with make_client(server) as client:
        with pytest.raises(error) as caught:
            await check(client)
    assert type(caught.value) is error
    assert len(server.seen) == 1
    assert caught.value.request_id == reply.headers["X-Cap-Requestid"]  # type: ignore[attr-defined]
    if code is not None:
        assert caught.value.code == code  # type: ignore[attr-defined]
    assert client.stats.errors == 1
    assert client.stats.retries == 0


@pytest.mark.parametrize(
    "failure",
    [
        Reply(
            status=503,
            body="<html>Service Unavailable</html>",
            headers={"Content-Type": "text/html"},
        ),
        Reply(status=502, body=""),
        Reply(status=500, body='{"errors": []}'),
        v2_error(521, "Multiple actions are running for the same customer", status=200),
        Reply(reset=True),
        # a complete HTTP answer whose JSON a proxy cut short: a transport fault in disguise
        Reply(status=200, body='{"data": [{"transferrable": tr'),
    ],
)
async def test_transient_failures_are_retried_until_success(
    server: ScriptedServer, failure: Reply
) -> None:
    server.script(TC_PATH, failure, failure)
    async with make_client(server) as client:
        result = await check(client)
    assert result.transferrable is True
    assert len(server.seen) == 3
    assert (client.stats.requests, client.stats.retries, client.stats.errors) == (3, 2, 0)


async def test_gives_up_after_max_attempts_with_the_last_error(server: ScriptedServer) -> None:
    failure = Reply(status=503, body="busy", headers={"X-Cap-Requestid": "last"})
    server.script(TC_PATH, *[failure] * 10)
    async with make_client(server, retry=RetryPolicy(max_attempts=3, wait_initial=0.001)) as client:
        with pytest.raises(ServerError) as caught:
            await check(client)
    assert caught.value.status == 503
    assert caught.value.request_id == "last"
    assert len(server.seen) == 3


async def test_retry_none_sends_once(server: ScriptedServer) -> None:
    server.script(TC_PATH, Reply(status=503))
    async with make_client(server, retry=None) as client:
        with pytest.raises(ServerError):
            await check(client)
    assert len(server.seen) == 1


async def test_retry_after_is_honoured_by_a_shared_cooldown(server: ScriptedServer) -> None:
    # One 429 asking for 0.3 s; five other calls start while it is in force.
    server.script(TC_PATH, v2_error(429, "Too many requests", status=429, **{"Retry-After": "0.3"}))
    limiter = SignallingLimiter()
    async with make_client(server, limiter=limiter) as client:
        first = asyncio.create_task(check(client))
        await limiter.cooled.wait()  # the 429 has been seen and the endpoint paused
        others = [asyncio.create_task(check(client)) for _ in range(5)]
        results = await asyncio.gather(first, *others)
    assert all(r.transferrable for r in results)
    t429 = server.seen[0].time
    later = [s.time - t429 for s in server.seen[1:]]
    assert len(later) == 6
    assert min(later) >= 0.3 - 0.01  # nobody, the retry included, went before Retry-After ended
    assert client.stats.rate_limited == 1


async def test_retry_after_beyond_the_cap_fails_fast(server: ScriptedServer) -> None:
    server.script(TC_PATH, v2_error(429, "slow down", status=429, **{"Retry-After": "3600"}))
    async with make_client(server, retry=RetryPolicy(max_retry_after=120.0)) as client:
        with pytest.raises(RateLimitedError) as caught:
            await check(client)
    assert caught.value.retry_after == 3600
    assert caught.value.retryable is True
    assert len(server.seen) == 1


async def test_v11_rate_limit_code_inside_a_200_is_a_rate_limit(server: ScriptedServer) -> None:
    body = {
        "response": {"status": {"success": "false", "code": 517, "message": "Rate limit exceeded"}}
    }
    server.script(VC_PATH, Reply(body=json.dumps(body), headers={"Retry-After": "0"}))
    async with make_client(server) as client:
        code = await client.points.issue_validation_code(Identifier.email("a@example.com"))
    assert code.item_status.success
    assert client.stats.rate_limited == 1
    assert len(server.seen) == 2


async def test_timeout_is_a_transport_error(server: ScriptedServer) -> None:
    server.script(TC_PATH, Reply(hang=True))
    async with make_client(server, timeout=0.2, retry=None) as client:
        with pytest.raises(TransportError, match=r"timed out after 0\.2s"):
            await check(client)


async def test_connection_refused_is_a_transport_error() -> None:
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with CapillaryClient(f"http://127.0.0.1:{port}", AUTH, retry=None) as client:
        with pytest.raises(TransportError) as caught:
            await check(client)
    assert caught.value.retryable


async def test_cancellation_closes_everything(server: ScriptedServer) -> None:
    server.script(TC_PATH, *[Reply(hang=True)] * 3)
    async with make_client(server) as client:
        tasks = [asyncio.create_task(check(client)) for _ in range(3)]
        await server.wait_for_requests(3)
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    # filterwarnings=error turns an unclosed session or connector into a failure here.


async def test_session_is_closed_when_the_body_of_the_with_raises(server: ScriptedServer) -> None:
    client = make_client(server)

    async def body() -> None:
        async with client:
            await check(client)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await body()
    transport = client._transport
    assert transport is not None
    assert transport._session.closed


async def test_caller_supplied_session_is_left_open(server: ScriptedServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with make_client(server, session=session) as client:
            await check(client)
        assert not session.closed
        assert server.seen[0].headers["Authorization"].startswith("Basic ")


async def test_calls_outside_the_context_manager_are_refused(server: ScriptedServer) -> None:
    client = make_client(server)
    with pytest.raises(RuntimeError, match="not open"):
        await check(client)
    async with client:
        pass
    with pytest.raises(RuntimeError, match="not open"):
        await check(client)
    assert server.seen == []


async def test_bad_arguments_raise_before_any_io(server: ScriptedServer) -> None:
    async with make_client(server) as client:
        with pytest.raises(InvalidRequestError):
            await client.points.issue_validation_code(Identifier.mobile("919777785205"), points=0)
        with pytest.raises(InvalidRequestError):
            await client.points.is_transferrable(
                from_customer=Identifier.mobile("1"),
                to_customer=Identifier.mobile("2"),
                points=True,
            )
    assert server.seen == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"endpoint_rate_limits": {"v2/points/transferAll": RateLimit(1)}},
        {"rate_limit": 1000},
        {"timeout": 0},
        {"max_connections": 0},
        {"retry": 3},
    ],
)
def test_bad_client_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError):
        CapillaryClient("https://eu.api.capillarytech.com", AUTH, **kwargs)


def test_endpoint_overrides_accept_the_one_r_spelling() -> None:
    limit = RateLimit(5, per=1.0)
    client = CapillaryClient(
        "https://eu.api.capillarytech.com",
        AUTH,
        endpoint_rate_limits={"v2/points/isTransferable": limit},
    )
    assert client.rate_limits["v2/points/isTransferrable"] is limit
    assert client.rate_limits["v1.1/points/validationcode"] == RateLimit(1000, per=60.0)


async def test_secrets_never_reach_logs_errors_or_reprs(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    header = AUTH.header
    server.script(TC_PATH, Reply(status=503), v2_error(401, "Unauthorized", status=401))
    caplog.set_level(logging.DEBUG, logger="capillary_points_async")
    async with make_client(server) as client:
        with pytest.raises(AuthenticationError) as caught:
            await check(client)
        texts = [
            caplog.text,
            str(caught.value),
            repr(caught.value),
            repr(client),
            repr(AUTH),
            str(AUTH),
        ]
    assert "attempt 1 failed" in caplog.text
    assert "giving up" in caplog.text
    for text in texts:
        for secret in (PASSWORD, DIGEST, header, header.split()[1]):
            assert secret not in text


async def test_debug_log_names_method_path_status_attempt_and_request_id(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="capillary_points_async")
    async with make_client(server) as client:
        await check(client)
    assert "POST v2/points/isTransferrable -> HTTP 200 (attempt 1, request id tc-1)" in caplog.text


async def test_library_is_silent_by_default(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server.script(TC_PATH, Reply(status=503))
    async with make_client(server) as client:
        await check(client)
    assert [r for r in caplog.records if r.name.startswith("capillary_points_async")] == []


async def test_proactive_limit_spaces_requests_on_the_wire(server: ScriptedServer) -> None:
    limit = RateLimit(5, per=0.5)
    async with make_client(server, rate_limit=limit) as client:
        await asyncio.gather(*(check(client) for _ in range(12)))
    times = sorted(server.arrivals(TC_PATH))
    # No 0.5 s window of arrivals holds more than 5 (the first one included).
    assert max(sum(1 for u in times if t <= u <= t + 0.5) for t in times) <= 5


# --------------------------------------------------------------------------- never twice

# isTransferrable declared as if it moved points: what the client does with a non-idempotent
# endpoint, counted at a real server (redeem and transfer will be declared so).
MOVES_POINTS = attrs.evolve(IS_TRANSFERRABLE, idempotent=False)


async def send_moving(client: CapillaryClient) -> Any:
    request = TransferCheckRequest(
        from_customer=Identifier.mobile("9777785206"),
        to_customer=Identifier.mobile("9777785207"),
        points=1,
    )
    return await client._call(MOVES_POINTS, request)


@pytest.mark.parametrize(
    "failure",
    [
        Reply(reset=True),  # the server read the request, then the connection dropped
        Reply(status=502, body="<html>Bad Gateway</html>"),
        Reply(status=500, body='{"errors": []}'),
        Reply(status=200, body='{"data": [{"transferrable": tr'),  # cut short on the way
    ],
    ids=["reset-after-send", "gateway-page", "5xx", "cut-short"],
)
async def test_a_request_that_may_have_been_applied_is_never_resent(
    server: ScriptedServer, failure: Reply
) -> None:
    server.script(TC_PATH, failure, failure)
    async with make_client(server) as client:
        with pytest.raises((TransportError, ServerError, ResponseDecodeError)):
            await send_moving(client)
    assert len(server.seen) == 1
    assert client.stats.retries == 0


@pytest.mark.parametrize(
    "refusal",
    [
        v2_error(429, "Too many requests", status=429, **{"Retry-After": "0.01"}),
        v2_error(521, "Multiple actions are running for the same customer", status=200),
    ],
    ids=["429", "521"],
)
async def test_a_request_the_server_refused_is_resent(
    server: ScriptedServer, refusal: Reply
) -> None:
    server.script(TC_PATH, refusal)
    async with make_client(server) as client:
        assert (await send_moving(client)).transferrable
    assert len(server.seen) == 2


async def test_a_connection_that_never_opened_is_retried_and_says_so() -> None:
    with socket.socket() as sock:  # a port nobody listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    retry = RetryPolicy(max_attempts=2, wait_initial=0.001, wait_max=0.001)
    async with CapillaryClient(closed, AUTH, rate_limit=None, retry=retry) as client:
        with pytest.raises(TransportError) as caught:
            await send_moving(client)
    assert caught.value.connect_failed is True
    assert client.stats.requests == 2  # retried: nothing can have reached a server


async def test_a_reset_after_sending_is_not_a_connect_failure(server: ScriptedServer) -> None:
    server.script(TC_PATH, Reply(reset=True))
    async with make_client(server, retry=None) as client:
        with pytest.raises(TransportError) as caught:
            await check(client)
    assert caught.value.connect_failed is False
