"""The rest of the two flows: isredeemable, redeem and transfer decoded from their doc samples,
their requests as the docs show them, and the rule that a call moving points is never sent
twice, counted at a real local server."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import orjson
import pytest

from capillary_points_async import (
    BasicAuth,
    CapillaryClient,
    CustomerNotFoundError,
    Identifier,
    InsufficientPointsError,
    InvalidIdentifierError,
    InvalidRequestError,
    InvalidValidationCodeError,
    OutcomeUnknownError,
    Redeemability,
    RedeemabilityRequest,
    RedeemRequest,
    Redemption,
    RetryPolicy,
    Transfer,
    TransferNotAllowedError,
    TransferRequest,
    TransportError,
)
from capillary_points_async._converter import structure
from capillary_points_async._endpoints import IS_REDEEMABLE, REDEEM, TRANSFER

from ._samples import raw_response, sample_bytes
from ._scripted import Reply, ScriptedServer

REDEEM_PATH = "/v1.1/points/redeem"
TRANSFER_PATH = "/v2/points/transfer"
ISREDEEMABLE_PATH = "/v1.1/points/isredeemable"
AUTH = BasicAuth("till_user", "till-password")
FAST_RETRY = RetryPolicy(max_attempts=4, wait_initial=0.001, wait_max=0.002, max_time=10.0)
MOBILE = Identifier.mobile("919777785205")
UTC = timezone.utc


def decode(endpoint: Any, name: str, status: int = 200) -> Any:
    decoded = endpoint.decode(raw_response(sample_bytes(name), status, request_id="rid"), 0.0)
    return structure(decoded.fields(), endpoint.model, endpoint.key)


# --------------------------------------------------------------------------- doc samples


def test_isredeemable_example() -> None:
    result = decode(IS_REDEEMABLE, "isredeemable_openapi_200.json")
    assert isinstance(result, Redeemability)
    assert result.redeemable is True  # "true", a string, on the wire
    assert (result.points, result.points_redeem_value, result.points_currency_ratio) == (
        10,
        10.0,
        1.0,
    )
    assert (result.mobile, result.email, result.external_id) == (
        "919777785205",
        "testgrp3@gmail.com",
        "434547",
    )
    assert (result.item_status.code, result.item_status.message) == (800, "Points can be redeemed")
    assert result.request_id == "rid"


def test_isredeemable_schema_variant_with_string_codes_and_points() -> None:
    result = decode(IS_REDEEMABLE, "isredeemable_openapi_schema_200.json")
    assert (result.points, result.points_redeem_value, result.points_redeem_local_value) == (
        100,
        536.0,
        5239.79,
    )
    assert result.item_status.code == 800  # "800" on the wire


def test_redeem_example() -> None:
    result = decode(REDEEM, "redeem_openapi_200.json")
    assert isinstance(result, Redemption)
    assert (result.redemption_id, result.points_redeemed, result.balance) == ("7t4y2a", 1, 1990.0)
    assert (result.user_id, result.redeemed_value, result.redemption_purpose) == (
        "564670755",
        1.0,
        "",
    )
    assert result.side_effects is not None
    (effect,) = result.side_effects.effect
    assert (effect.validation_code, effect.num_points, effect.redeemed_on_bill_id) == (
        "NS3U05",
        1.0,
        -1,
    )
    assert result.item_status.code == 800


def test_redeem_schema_variant() -> None:
    result = decode(REDEEM, "redeem_openapi_schema_200.json")
    assert (result.redemption_id, result.points_redeemed, result.balance) == ("LUVkYh", 10, 132.0)


def test_redeem_error_example_is_customer_not_found() -> None:
    with pytest.raises(CustomerNotFoundError) as caught:
        decode(REDEEM, "redeem_openapi_400.json", status=400)
    assert (caught.value.status, caught.value.code, caught.value.request_id) == (400, 816, "rid")


@pytest.mark.parametrize(
    ("name", "when", "current"),
    [
        ("transfer_openapi_201.json", datetime(2026, 1, 7, 10, 15, 5, tzinfo=UTC), 492.0),
        ("transfer_openapi_201_mobile.json", datetime(2025, 10, 17, 10, 55, 49, tzinfo=UTC), 496.0),
        ("transfer_openapi_schema_201.json", None, 7500.0),
    ],
)
def test_transfer_examples_answered_201(name: str, when: datetime | None, current: float) -> None:
    result = decode(TRANSFER, name, status=201)
    assert isinstance(result, Transfer)
    assert result.transferred_at == when
    assert result.breakup[0].program_current_points == current
    assert result.deducted_points == result.breakup[0].deducted_points
    assert result.transfer_type == "DEDUCTION"
    assert result.transferred_to is not None
    assert result.transferred_to.user_id


def test_transfer_example_values() -> None:
    result = decode(TRANSFER, "transfer_openapi_201.json", status=201)
    # Both doc examples show 2 transferred for 1 deducted; the library reports what they say.
    assert (result.points_transferred, result.deducted_points) == (2.0, 1.0)
    assert (result.transfer_id, result.program_name) == (1043035, "DocDemoDefaultProgram")
    assert result.transferred_from is not None
    assert (result.transferred_from.first_name, result.transferred_from.user_id) == (
        "Oliver",
        564955302,
    )


# --------------------------------------------------------------------------- requests


def test_isredeemable_request() -> None:
    request = IS_REDEEMABLE.request(
        RedeemabilityRequest(MOBILE, 10, program_id=973, validation_code="NS3U05", issue_otp=True)
    )
    assert (request.method, request.path, request.body) == ("GET", "v1.1/points/isredeemable", None)
    assert request.params == (
        ("mobile", "919777785205"),
        ("points", "10"),
        ("program_id", "973"),
        ("validation_code", "NS3U05"),
        ("issue_otp", "true"),
        ("format", "json"),
    )


def test_redeem_request_is_the_documented_body() -> None:
    request = REDEEM.request(
        RedeemRequest(
            Identifier.external_id("434547"),
            points=10,
            validation_code="NS3U05",
            transaction_number="bill-1",
            program_id=973,
            notes="gift",
        )
    )
    assert (request.method, request.path) == ("POST", "v1.1/points/redeem")
    assert request.params == (("program_id", "973"), ("format", "json"))
    assert orjson.loads(request.body or b"") == {
        "root": {
            "redeem": [
                {
                    "points_redeemed": 10,
                    "customer": {"external_id": "434547"},
                    "validation_code": "NS3U05",
                    "transaction_number": "bill-1",
                    "notes": "gift",
                }
            ]
        }
    }


def test_transfer_request_is_the_documented_body() -> None:
    request = TRANSFER.request(
        TransferRequest(
            from_customer=Identifier.mobile("9777785206"),
            to_customer=Identifier.user_id(565039506),
            points=2,
            program_id=973,
            code="123456",
        )
    )
    assert (request.method, request.path, request.params) == ("POST", "v2/points/transfer", ())
    assert orjson.loads(request.body or b"") == {
        "pointsTobeTransferred": 2,
        "programId": 973,
        "fromCustomerIdentifier": {"type": "MOBILE", "value": "9777785206"},
        "toCustomerIdentifier": {"type": "ID", "value": "565039506"},
        "code": "123456",
    }


@pytest.mark.parametrize(
    "build",
    [
        lambda: RedeemRequest(MOBILE, points=0, validation_code="X"),
        lambda: RedeemRequest(MOBILE, points=10, validation_code=""),
        lambda: RedeemRequest(MOBILE, points=10, validation_code=None),
        lambda: RedeemRequest(MOBILE, points=10, validation_code="X", notes=""),
        lambda: RedeemRequest(MOBILE, points=10, validation_code="X", program_id=2**63),
        lambda: RedeemRequest("919777785205", points=10, validation_code="X"),
        lambda: RedeemabilityRequest(MOBILE, 1.5),
        lambda: RedeemabilityRequest(MOBILE, 10, issue_otp="yes"),
        lambda: TransferRequest(from_customer=MOBILE, to_customer=MOBILE, points=1),
        lambda: TransferRequest(
            from_customer=MOBILE, to_customer=Identifier.mobile("1"), points=1, code=""
        ),
        lambda: TransferRequest(
            from_customer=MOBILE, to_customer=Identifier.mobile("1"), points=True
        ),
    ],
)
def test_bad_arguments_are_refused_before_any_io(build: Any) -> None:
    with pytest.raises(InvalidRequestError):
        build()


# --------------------------------------------------------------------------- codes


def v11_failure(code: int, message: str) -> bytes:
    status = {"success": "false", "code": code, "message": message}
    return json.dumps(
        {"response": {"status": status, "responses": {"points": {"item_status": status}}}}
    ).encode()


def v2_failure(code: int) -> bytes:
    return json.dumps({"errors": [{"status": False, "code": code, "message": "no"}]}).encode()


@pytest.mark.parametrize(
    ("endpoint", "body", "error"),
    [
        (REDEEM, v11_failure(808, "Validation code is invalid"), InvalidValidationCodeError),
        (REDEEM, v11_failure(803, "more than the available points"), InsufficientPointsError),
        (REDEEM, v11_failure(818, "Current points are less"), InsufficientPointsError),
        (TRANSFER, v2_failure(605), InvalidValidationCodeError),
        (TRANSFER, v2_failure(422), InsufficientPointsError),
        (TRANSFER, v2_failure(901), TransferNotAllowedError),
        (TRANSFER, v2_failure(903), TransferNotAllowedError),
        (TRANSFER, v2_failure(904), TransferNotAllowedError),
        (TRANSFER, v2_failure(419), InvalidIdentifierError),
        (TRANSFER, v2_failure(8015), CustomerNotFoundError),
    ],
)
def test_flow_codes_are_typed(endpoint: Any, body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        endpoint.decode(raw_response(body, 400), 0.0)


# --------------------------------------------------------------------------- never twice


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with ScriptedServer() as scripted:
        scripted.defaults[REDEEM_PATH] = Reply(body=sample_bytes("redeem_openapi_200.json"))
        scripted.defaults[TRANSFER_PATH] = Reply(
            status=201, body=sample_bytes("transfer_openapi_201.json")
        )
        scripted.defaults[ISREDEEMABLE_PATH] = Reply(
            body=sample_bytes("isredeemable_openapi_200.json")
        )
        yield scripted


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as sock:  # nobody listens once it is closed
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def client_for(url: str, **kwargs: Any) -> CapillaryClient:
    kwargs.setdefault("rate_limit", None)
    kwargs.setdefault("retry", FAST_RETRY)
    return CapillaryClient(url, AUTH, **kwargs)


async def redeem(client: CapillaryClient) -> Redemption:
    return await client.points.redeem(MOBILE, points=1, validation_code="NS3U05")


async def transfer(client: CapillaryClient) -> Transfer:
    return await client.points.transfer(
        from_customer=Identifier.mobile("9777785206"),
        to_customer=Identifier.mobile("9777785207"),
        points=1,
    )


CALLS = {"redeem": (redeem, REDEEM_PATH), "transfer": (transfer, TRANSFER_PATH)}


@pytest.mark.parametrize("flow", sorted(CALLS))
@pytest.mark.parametrize(
    ("failure", "request_id"),
    [
        (Reply(reset=True), None),  # the body was read, then the connection dropped
        (Reply(status=502, body="<html>Bad Gateway</html>", headers={"X-Cap-Requestid": "g"}), "g"),
        (Reply(status=503, body=""), None),
        (Reply(status=200, body='{"response": {"status": {"succ'), None),  # cut short
    ],
    ids=["dropped-after-read", "gateway-page", "503", "cut-short"],
)
async def test_a_call_that_may_have_moved_points_is_sent_once_and_says_so(
    server: ScriptedServer, flow: str, failure: Reply, request_id: str | None
) -> None:
    call, path = CALLS[flow]
    server.script(path, failure, failure, failure)
    async with client_for(server.url) as client:
        with pytest.raises(OutcomeUnknownError) as caught:
            await call(client)
    assert len(server.arrivals(path)) == 1
    error = caught.value
    assert isinstance(error, TransportError)
    assert error.request_id == request_id
    assert error.request.points == 1  # the request object, to check before retrying
    assert "check before trying again" in str(error)
    assert error.retryable is False


@pytest.mark.parametrize("flow", sorted(CALLS))
async def test_a_timeout_after_sending_is_an_unknown_outcome_sent_once(
    server: ScriptedServer, flow: str
) -> None:
    call, path = CALLS[flow]
    server.script(path, Reply(hang=True))
    async with client_for(server.url, timeout=0.2) as client:
        with pytest.raises(OutcomeUnknownError, match="timed out"):
            await call(client)
    assert len(server.arrivals(path)) == 1


@pytest.mark.parametrize("flow", sorted(CALLS))
@pytest.mark.parametrize(
    "refusal",
    [
        Reply(status=429, body="", headers={"Retry-After": "0.01"}),
        Reply(
            status=521,
            body=json.dumps({"errors": [{"code": 521, "message": "Multiple actions are running"}]}),
        ),
    ],
    ids=["429", "521"],
)
async def test_a_refused_call_is_sent_again(
    server: ScriptedServer, flow: str, refusal: Reply
) -> None:
    call, path = CALLS[flow]
    server.script(path, refusal)
    async with client_for(server.url) as client:
        await call(client)
    assert len(server.arrivals(path)) == 2


async def test_an_answered_refusal_is_its_own_error_not_an_unknown_outcome(
    server: ScriptedServer,
) -> None:
    server.script(REDEEM_PATH, Reply(status=200, body=v11_failure(808, "invalid code")))
    async with client_for(server.url) as client:
        with pytest.raises(InvalidValidationCodeError):
            await redeem(client)
    assert len(server.arrivals(REDEEM_PATH)) == 1


async def test_a_connection_that_never_opened_is_retried_and_is_not_an_unknown_outcome(
    unused_port: int,
) -> None:
    retry = RetryPolicy(max_attempts=3, wait_initial=0.001, wait_max=0.001)
    async with client_for(f"http://127.0.0.1:{unused_port}", retry=retry) as client:
        with pytest.raises(TransportError) as caught:
            await redeem(client)
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert client.stats.requests == 3


async def test_the_many_twins_give_one_outcome_per_input(server: ScriptedServer) -> None:
    server.script(REDEEM_PATH, Reply(status=502, body=""))
    requests = [
        RedeemRequest(Identifier.mobile(f"91977778520{i}"), points=1, validation_code="C")
        for i in range(5)
    ]
    async with client_for(server.url) as client:
        outcomes = [
            o async for o in client.points.redeem_many(requests, concurrency=1, ordered=True)
        ]
        checks = [
            o
            async for o in client.points.is_redeemable_many([RedeemabilityRequest(MOBILE, 10)] * 3)
        ]
        moved = [
            o
            async for o in client.points.transfer_many(
                [
                    TransferRequest(
                        from_customer=MOBILE, to_customer=Identifier.mobile("1"), points=1
                    )
                ]
            )
        ]
    assert [type(o.error) for o in outcomes] == [OutcomeUnknownError] + [type(None)] * 4
    assert outcomes[0].attempts == 1
    assert len(server.arrivals(REDEEM_PATH)) == 5
    assert all(o.ok and o.value.redeemable for o in checks)
    assert moved[0].ok
    assert moved[0].value.points_transferred == 2.0


async def test_5xx_on_an_endpoint_that_may_be_resent_is_still_retried(
    server: ScriptedServer,
) -> None:
    server.script(ISREDEEMABLE_PATH, Reply(status=503, body=""))
    async with client_for(server.url) as client:
        result = await client.points.is_redeemable(MOBILE, 10)
    assert result.redeemable
    assert len(server.arrivals(ISREDEEMABLE_PATH)) == 2
