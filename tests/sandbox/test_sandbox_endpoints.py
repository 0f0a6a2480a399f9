"""The two endpoints against the documentation: bodies, codes, statuses, credentials, OTPs."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import aiohttp
import pytest

from capillary_points_async.testing import FakeCapillary

from .helpers import CHECK_PATH, CODE_PATH, Api, Clock, basic, check_body, sample


def shape(value: Any) -> Any:
    """The value's structure: keys and JSON types, no values (bool is not a number here)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def identifiers_sorted(value: Any) -> Any:
    """The same document with identifier lists in one order, which Capillary does not fix."""
    if isinstance(value, dict):
        return {
            key: sorted(item, key=lambda i: i["type"])
            if key in ("identifiers", "identifiersAll", "commChannels")
            else identifiers_sorted(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [identifiers_sorted(item) for item in value]
    return value


# -- v1.1 validation code ----------------------------------------------------------------------


async def test_validation_code_answers_the_page_sample_verbatim(api: Api) -> None:
    status, headers, body = await api.code(external_id="434547", points="-100")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert body == sample("validationcode_page_200.json")


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("mobile", "9777785205"),
        ("mobile", "919777785205"),
        ("mobile", "+91 97777 85205"),
        ("email", "TestGrp3@gmail.com"),
        ("external_id", "434547"),
        ("id", "564955205"),
    ],
)
async def test_validation_code_finds_the_customer_by_any_identifier(
    api: Api, kind: str, value: str
) -> None:
    status, _, body = await api.code(**{kind: value}, points="100")
    assert status == 200
    code = body["response"]["validation_code"]["code"]
    assert (code["mobile"], code["points"]) == ("919777785205", 100)
    assert code["item_status"]["message"] == "Validation Code Issued by SMS"


@pytest.mark.parametrize(
    ("kind", "value"), [("card_number", "CARD0000000002"), ("card_external_id", "card-ext-2")]
)
async def test_validation_code_finds_generated_customers_by_card(
    api: Api, kind: str, value: str
) -> None:
    status, _, body = await api.code(**{kind: value})
    assert status == 200
    code = body["response"]["validation_code"]["code"]
    assert code == {
        "mobile": "918000000002",
        "email": "customer2@example.com",
        "external_id": "ext-2",
        "item_status": {"success": "true", "code": 200, "message": "Validation Code Issued by SMS"},
    }


async def test_validation_code_for_an_unknown_customer_is_816_inside_a_200(api: Api) -> None:
    status, _, body = await api.code(mobile="9000000001", points="5")
    assert status == 200
    assert body == {
        "response": {
            "status": {
                "success": "false",
                "code": 500,
                "message": "All requests have failed due to errors",
            },
            "validation_code": {
                "code": {
                    "mobile": "9000000001",
                    "email": "",
                    "external_id": "",
                    "points": 5,
                    "item_status": {
                        "success": "false",
                        "code": 816,
                        "message": "Customer not found for organization",
                    },
                }
            },
        }
    }


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"mobile": ""},
        {"mobile": "9777785205", "points": "ten"},
        {"email": "a@b", "points": "1.5"},
    ],
)
async def test_validation_code_bad_input_is_400(api: Api, params: dict[str, str]) -> None:
    status, _, body = await api.code(**params)
    assert status == 400
    assert body["response"]["status"]["code"] == 400
    assert body["response"]["status"]["success"] == "false"
    assert "validation_code" not in body["response"]


# -- v2 isTransferrable ------------------------------------------------------------------------


@pytest.mark.parametrize("path", [CHECK_PATH, "/v2/points/isTransferable"])
async def test_transfer_check_answers_the_samples_on_both_spellings(api: Api, path: str) -> None:
    status, headers, body = await api.check(path=path)
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    # Same structure and types as the page (floats where it shows 1.0 and 50000.000)...
    assert shape(body) == shape(sample("istransferrable_page_200.json"))
    # ...and the same values as the OpenAPI example, which does not redact the e-mails.
    assert identifiers_sorted(body) == identifiers_sorted(
        sample("istransferrable_openapi_200.json")
    )


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        ("MOBILE", "919777785206"),
        ("mobile", "9777785206"),
        ("EMAIL", "testgrp4@gmail.com"),
        ("EXTERNALID", "434548"),
        ("EXTERNAL_ID", "434548"),
        ("externalId", "434548"),
        ("ID", "564955302"),
        ("ID", 564955302),
    ],
)
async def test_transfer_check_accepts_every_identifier_spelling(
    api: Api, type_: str, value: str | int
) -> None:
    source = {"type": type_, "value": value}
    status, _, body = await api.check(check_body(fromCustomerIdentifier=source))
    assert status == 200
    assert body["data"][0]["transferFrom"]["id"] == 564955302


async def test_transfer_check_finds_generated_customers_by_card(api: Api) -> None:
    body = check_body(
        fromCustomerIdentifier={"type": "CARDNUMBER", "value": "CARD0000000000"},
        toCustomerIdentifier={"type": "cardExternalId", "value": "card-ext-1"},
    )
    status, _, answer = await api.check(body)
    assert status == 200
    item = answer["data"][0]
    assert (item["transferFrom"]["id"], item["transferTo"]["id"]) == (800_000_000, 800_000_001)
    assert {"type": "cardNumber", "value": "CARD0000000000"} in (
        item["transferFrom"]["profiles"][0]["identifiers"]
    )


@pytest.mark.parametrize(
    ("overrides", "transferrable"),
    [
        ({"pointsTobeTransferred": 500}, True),
        # 9777785206 holds 600 points, but 100 of them came with its creation.
        ({"pointsTobeTransferred": 501}, False),
        # 9777785207 only has points from its creation.
        (
            {
                "fromCustomerIdentifier": {"type": "MOBILE", "value": "9777785207"},
                "toCustomerIdentifier": {"type": "MOBILE", "value": "9777785206"},
            },
            False,
        ),
        ({"groupProgramTransfer": "false"}, True),
        ({"groupProgramTransfer": "TRUE", "programId": 974}, True),
        ({"groupProgramTransfer": True, "programId": "974"}, True),
        ({"programId": None, "groupProgramTransfer": None, "issueOtp": None}, True),
    ],
)
async def test_only_transaction_points_are_transferrable(
    api: Api, overrides: dict[str, Any], transferrable: bool
) -> None:
    status, _, body = await api.check(check_body(**overrides))
    assert status == 200
    assert body["data"][0]["transferrable"] is transferrable
    assert body["data"][0]["pointsTobeTransferred"] == float(
        overrides.get("pointsTobeTransferred", 1)
    )


_UNKNOWN = {"type": "MOBILE", "value": "9000000001"}


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"programId": 1}, 885),
        ({"programId": "nine"}, 885),
        ({"fromCustomerIdentifier": {"type": "PASSPORT", "value": "X1"}}, 8013),
        ({"fromCustomerIdentifier": {"type": 5, "value": "9777785206"}}, 8013),
        ({"fromCustomerIdentifier": {"type": "MOBILE", "value": True}}, 8013),
        ({"toCustomerIdentifier": {"type": "MOBILE", "value": ""}}, 8013),
        ({"fromCustomerIdentifier": None}, 8013),
        ({"fromCustomerIdentifier": _UNKNOWN}, 8015),
        ({"toCustomerIdentifier": _UNKNOWN}, 8015),
        ({"groupProgramTransfer": True}, 3316),
        ({"toCustomerIdentifier": {"type": "EMAIL", "value": "testgrp4@gmail.com"}}, 418),
        ({"pointsTobeTransferred": 0}, 422),
        ({"pointsTobeTransferred": -3}, 422),
        ({"pointsTobeTransferred": "1"}, 422),
        ({"pointsTobeTransferred": True}, 422),
        ({"pointsTobeTransferred": None}, 422),
        ({"pointsTobeTransferred": 1.5}, 807),
    ],
)
async def test_transfer_check_errors_are_400_with_the_documented_code(
    api: Api, overrides: dict[str, Any], code: int
) -> None:
    status, _, body = await api.check(check_body(**overrides))
    assert status == 400
    assert set(body) == {"warnings", "errors"}
    assert body["warnings"] == []
    [error] = body["errors"]
    assert (error["status"], error["code"]) == (False, code)
    assert error["message"]


async def test_transfer_check_wants_a_json_object(
    session: aiohttp.ClientSession, fake: FakeCapillary
) -> None:
    async with session.post(fake.url + CHECK_PATH, data=b"pointsTobeTransferred=1") as response:
        assert response.status == 415
    async with session.post(
        fake.url + CHECK_PATH, data=b"{not json", headers={"Content-Type": "application/json"}
    ) as response:
        assert (response.status, (await response.json())["errors"][0]["code"]) == (400, 400)
    async with session.post(fake.url + CHECK_PATH, json=[1]) as response:
        assert response.status == 400


# -- credentials, headers, unknown paths -------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        basic(password="wrong"),
        basic(username="someone-else"),
        # The plain password where its MD5 digest belongs.
        "Basic " + base64.b64encode(b"sandbox:sandbox").decode(),
    ],
)
async def test_bad_credentials_are_401_in_each_envelope(
    fake: FakeCapillary, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(fake.url + CODE_PATH, params={"mobile": "9777785205"}) as response:
            assert response.status == 401
            assert await response.json() == {
                "response": {"status": {"success": "false", "code": 401, "message": "Unauthorized"}}
            }
        async with session.post(fake.url + CHECK_PATH, json=check_body()) as response:
            assert response.status == 401
            assert await response.json() == {
                "errors": [{"status": False, "code": 401, "message": "Unauthorized"}]
            }


async def test_configured_credentials(clock: Clock) -> None:
    async with FakeCapillary(username="till_7", password="Pass123", clock=clock) as fake:
        for authorization, expected in ((basic(), 401), (basic("till_7", "Pass123"), 200)):
            async with aiohttp.ClientSession(headers={"Authorization": authorization}) as session:
                status, _, _ = await Api(session, fake).code(mobile="9777785205")
            assert status == expected


def test_repr_never_shows_the_password_or_its_digest() -> None:
    fake = FakeCapillary(password="s3cret-Pass")
    text = repr(fake) + repr(vars(fake).get("state"))
    assert "s3cret" not in text
    assert hashlib.md5(b"s3cret-Pass").hexdigest() not in text


async def test_every_response_has_its_own_request_id(api: Api) -> None:
    ids = {(await api.code(mobile="9777785205"))[1]["X-Cap-Requestid"] for _ in range(3)}
    ids |= {(await api.check())[1]["X-Cap-Requestid"] for _ in range(3)}
    ids.add((await api.code())[1]["X-Cap-Requestid"])
    assert len(ids) == 7


async def test_unknown_paths_are_404_json(
    session: aiohttp.ClientSession, fake: FakeCapillary
) -> None:
    async with session.get(fake.url + "/v2/points/redeem") as response:
        assert response.status == 404
        assert response.headers["X-Cap-Requestid"]
        assert (await response.json())["errors"][0]["code"] == 404


# -- validation codes (OTP) ---------------------------------------------------------------------


async def test_validation_code_is_reissued_until_it_expires(
    api: Api, fake: FakeCapillary, clock: Clock
) -> None:
    assert fake.state.otp_for("9777785205") is None
    await api.code(external_id="434547")
    first = fake.state.otp_for("9777785205")
    assert first is not None
    assert len(first) == 6
    assert fake.state.otp_for("434547", kind="external_id") == first

    clock.advance(899.0)
    await api.code(mobile="919777785205")
    assert fake.state.otp_for("testgrp3@gmail.com", kind="email") == first

    clock.advance(1.0)  # 900 s after issue: expired
    assert fake.state.otp_for("9777785205") is None
    await api.code(mobile="9777785205")
    second = fake.state.otp_for("9777785205")
    assert second is not None
    assert second != first


async def test_validation_code_validity_is_configurable(
    session: aiohttp.ClientSession, clock: Clock
) -> None:
    async with FakeCapillary(otp_validity=60.0, clock=clock) as fake:
        api = Api(session, fake)
        await api.code(mobile="9777785205")
        first = fake.state.otp_for("9777785205")
        clock.advance(60.0)
        await api.code(mobile="9777785205")
        assert fake.state.otp_for("9777785205") not in (None, first)


async def test_transfer_check_issues_an_otp_only_when_asked_and_transferrable(
    api: Api, fake: FakeCapillary
) -> None:
    await api.check(check_body(issueOtp=False))
    assert fake.state.otp_for("9777785206", scope="transfer") is None
    await api.check(check_body(issueOtp="true", pointsTobeTransferred=10_000))
    assert fake.state.otp_for("9777785206", scope="transfer") is None
    await api.check(check_body(issueOtp=True))
    assert fake.state.otp_for("9777785206", scope="transfer") is not None
    # A transfer's OTP is no validation code for a redemption.
    assert fake.state.otp_for("9777785206") is None
