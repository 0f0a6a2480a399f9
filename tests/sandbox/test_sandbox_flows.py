"""The rest of both flows, with state: isredeemable, redeem and transfer against their
documented examples, balances that fall and move, codes that are used up (issue 12)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest

from capillary_points_async import (
    BasicAuth,
    CapillaryClient,
    Identifier,
    InsufficientPointsError,
    InvalidValidationCodeError,
)
from capillary_points_async import _endpoints as declared
from capillary_points_async.testing import (
    ENDPOINTS,
    IS_REDEEMABLE,
    IS_TRANSFERRABLE,
    REDEEM,
    TRANSFER,
    VALIDATION_CODE,
    FakeCapillary,
)

from .helpers import Api, check_body, redeem_body, sample, transfer_body
from .test_sandbox_endpoints import shape

RICH = "919777785205"  # 5000 transaction points
SENDER = "919777785206"  # 500 transaction points, 100 from its creation
RECEIVER = "919777785207"  # 100 points from its creation only


def points_of(fake: FakeCapillary, mobile: str) -> tuple[float, float]:
    customer = fake.state.find("mobile", mobile)
    assert customer is not None
    return customer.transaction_points, customer.creation_points


async def issued_code(api: Api, mobile: str) -> str:
    await api.code(mobile=mobile)
    code = api.fake.state.otp_for(mobile)
    assert code is not None
    return code


def item_of(body: Any) -> Any:
    return body["response"]["responses"]["points"]


# -- the endpoints come from the library's declarations ---------------------------------------


def test_the_endpoint_names_are_the_declarations_keys() -> None:
    assert tuple(endpoint.key for endpoint in declared.ENDPOINTS) == ENDPOINTS
    assert (
        declared.VALIDATION_CODE.key,
        declared.IS_TRANSFERRABLE.key,
        declared.IS_REDEEMABLE.key,
        declared.REDEEM.key,
        declared.TRANSFER.key,
    ) == (VALIDATION_CODE, IS_TRANSFERRABLE, IS_REDEEMABLE, REDEEM, TRANSFER)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        (endpoint.method, name)
        for endpoint in declared.ENDPOINTS
        for name in (endpoint.key, *endpoint.aliases)
    ],
)
async def test_every_declared_spelling_is_served_with_its_declared_method_only(
    session: aiohttp.ClientSession, fake: FakeCapillary, method: str, path: str
) -> None:
    other = "PUT"
    async with session.request(other, f"{fake.url}/{path}") as response:
        assert response.status == 405
        assert response.headers["Allow"] == method
    async with session.request(method, f"{fake.url}/{path}") as response:
        assert response.status not in (404, 405)  # reached the endpoint (a 400 for no input)
    assert fake.stats.requests == {declared.canonical_key(path): 1}


# -- isredeemable ------------------------------------------------------------------------------


async def test_isredeemable_answers_its_documented_example_verbatim(api: Api) -> None:
    status, _, body = await api.redeemable(mobile=RICH, points="10", program_id="973")
    assert status == 200
    assert body == sample("isredeemable_openapi_200.json")


async def test_isredeemable_beyond_the_balance_says_false_with_803_in_the_same_shape(
    api: Api,
) -> None:
    status, _, body = await api.redeemable(mobile=RICH, points="5001")
    assert status == 200
    assert shape(body) == shape(sample("isredeemable_openapi_200.json"))
    assert body["response"]["status"] == {
        "success": "false",
        "code": 500,
        "message": "All requests have failed due to errors",
    }
    item = body["response"]["points"]["redeemable"]
    assert (item["is_redeemable"], item["points"]) == ("false", 5001)
    assert item["item_status"] == {
        "success": "false",
        "code": 803,
        "message": "Unable to redeem. The points you are trying to redeem is more than the "
        "available points",
    }


async def test_isredeemable_counts_the_points_of_the_creation_too(api: Api) -> None:
    # 919777785207 has 100 points, all from its creation: not transferable, but redeemable.
    item = (await api.redeemable(mobile=RECEIVER, points="100"))[2]["response"]["points"]
    assert item["redeemable"]["is_redeemable"] == "true"
    item = (await api.redeemable(mobile=RECEIVER, points="101"))[2]["response"]["points"]
    assert item["redeemable"]["item_status"]["code"] == 803


async def test_isredeemable_checks_a_validation_code_without_using_it_up(
    api: Api, fake: FakeCapillary
) -> None:
    item = (await api.redeemable(mobile=RICH, points="10", validation_code="NOPE00"))[2]
    assert item["response"]["points"]["redeemable"]["item_status"]["code"] == 808
    assert item["response"]["points"]["redeemable"]["is_redeemable"] == "false"
    code = await issued_code(api, RICH)
    for _ in range(2):
        item = (await api.redeemable(mobile=RICH, points="10", validation_code=code))[2]
        assert item["response"]["points"]["redeemable"]["item_status"]["code"] == 800
    assert fake.state.otp_for(RICH) == code


async def test_isredeemable_issues_a_code_only_when_asked_and_redeemable(
    api: Api, fake: FakeCapillary
) -> None:
    await api.redeemable(mobile=RICH, points="10", issue_otp="false")
    assert fake.state.otp_for(RICH) is None
    await api.redeemable(mobile=RICH, points="6000", issue_otp="true")
    assert fake.state.otp_for(RICH) is None
    await api.redeemable(mobile=RICH, points="10", issue_otp="true")
    assert fake.state.otp_for(RICH) is not None


async def test_isredeemable_for_an_unknown_customer_is_816_echoing_the_question(api: Api) -> None:
    status, _, body = await api.redeemable(email="nobody@example.com", points="1")
    assert status == 200
    item = body["response"]["points"]["redeemable"]
    assert (item["email"], item["mobile"], item["is_redeemable"]) == (
        "nobody@example.com",
        "",
        "false",
    )
    assert item["item_status"]["code"] == 816


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"mobile": RICH}, 400),  # points are required
        ({"mobile": RICH, "points": "0"}, 400),
        ({"mobile": RICH, "points": "1.5"}, 400),
        ({"points": "1"}, 400),  # no identifier
        ({"mobile": RICH, "points": "1", "issue_otp": "yes"}, 400),
        ({"mobile": RICH, "points": "1", "program_id": "12345"}, 885),
        ({"mobile": RICH, "points": "1", "program_id": "x"}, 885),
        ({"mobile": RICH, "points": "1", "format": "xml"}, 400),
    ],
)
async def test_isredeemable_refuses_bad_queries_in_the_v11_envelope(
    api: Api, params: dict[str, str], code: int
) -> None:
    status, _, body = await api.redeemable(**params)
    assert status == 400
    assert set(body["response"]) == {"status"}
    assert (body["response"]["status"]["success"], body["response"]["status"]["code"]) == (
        "false",
        code,
    )


# -- redeem ------------------------------------------------------------------------------------


async def test_redeem_takes_the_points_and_answers_in_the_shape_of_its_example(
    api: Api, fake: FakeCapillary
) -> None:
    code = await issued_code(api, RICH)
    status, headers, body = await api.redeem(
        redeem_body(RICH, 1, code, transaction_number="bilnum100000"), program_id="973"
    )
    assert status == 200
    assert headers["X-Cap-Requestid"]
    assert shape(body) == shape(sample("redeem_openapi_200.json"))
    item = item_of(body)
    assert body["response"]["status"] == {"success": "true", "code": 200, "message": "Success"}
    assert (item["mobile"], item["user_id"], item["points_redeemed"], item["balance"]) == (
        RICH,
        "564955205",
        "1",
        4999,
    )
    [effect] = item["side_effects"]["effect"]
    assert (effect["validation_code"], effect["num_points"]) == (code, 1)
    assert effect["redeemed_on_bill_number"] == "bilnum100000"
    assert item["item_status"] == {"success": "true", "code": 800, "message": "Points Redeemed"}
    assert points_of(fake, RICH) == (4999.0, 0.0)
    [done] = fake.state.redemptions
    assert (done.redemption_id, done.user_id, done.points) == (item["redemption_id"], 564955205, 1)


async def test_a_validation_code_is_used_up_by_the_redemption_that_quotes_it(
    api: Api, fake: FakeCapillary
) -> None:
    code = await issued_code(api, RICH)
    assert (await api.redeem(redeem_body(RICH, 10, code)))[0] == 200
    assert fake.state.otp_for(RICH) is None
    status, _, body = await api.redeem(redeem_body(RICH, 10, code))
    assert status == 200
    assert body["response"]["status"]["code"] == 500
    assert item_of(body)["item_status"] == {
        "success": "false",
        "code": 808,
        "message": "Invalid validation code",
    }
    assert points_of(fake, RICH) == (4990.0, 0.0)
    # Issuing again gives a new code, which works once.
    again = await issued_code(api, RICH)
    assert again != code
    assert item_of((await api.redeem(redeem_body(RICH, 10, again)))[2])["balance"] == 4980


@pytest.mark.parametrize("code", [None, "WRONG1", ""])
async def test_a_redemption_without_the_issued_code_is_808(
    api: Api, fake: FakeCapillary, code: str | None
) -> None:
    await issued_code(api, RICH)
    body = (await api.redeem(redeem_body(RICH, 1, code)))[2]
    assert item_of(body)["item_status"]["code"] == 808
    assert fake.state.redemptions == []


async def test_a_transfer_otp_is_no_validation_code(api: Api, fake: FakeCapillary) -> None:
    await api.check(check_body(issueOtp=True))
    otp = fake.state.otp_for(SENDER, scope="transfer")
    body = (await api.redeem(redeem_body(SENDER, 1, otp)))[2]
    assert item_of(body)["item_status"]["code"] == 808


async def test_redeeming_more_than_the_balance_is_803_and_keeps_the_code(
    api: Api, fake: FakeCapillary
) -> None:
    code = await issued_code(api, SENDER)
    body = (await api.redeem(redeem_body(SENDER, 601, code)))[2]
    assert item_of(body)["item_status"]["code"] == 803
    assert (item_of(body)["user_id"], item_of(body)["side_effects"]) == (
        "564955302",
        {"effect": []},
    )
    assert fake.state.otp_for(SENDER) == code
    # Transaction points go first, then those of the creation.
    assert item_of((await api.redeem(redeem_body(SENDER, 550, code)))[2])["balance"] == 50
    assert points_of(fake, SENDER) == (0.0, 50.0)


async def test_redeem_for_an_unknown_customer_is_the_documented_failure_verbatim(
    api: Api,
) -> None:
    status, _, body = await api.redeem(redeem_body("91789789781", 10, "NS3U05"))
    assert status == 200  # the docs file this body under 400: see _envelopes._v11_item
    assert body == sample("redeem_openapi_400.json")


@pytest.mark.parametrize(
    "variant",
    [
        # the schema's shapes: an object for root.redeem, points as a string
        lambda code: {"root": {"redeem": redeem_body(RICH, 1, code)["root"]["redeem"][0]}},
        lambda code: redeem_body(RICH, "1", code),
        # a float without a fraction, as encoders that keep every number a double send it
        lambda code: redeem_body(RICH, 1.0, code),
    ],
)
async def test_redeem_reads_the_schemas_variants_too(
    api: Api, variant: Callable[[str], Any]
) -> None:
    status, _, answer = await api.redeem(variant(await issued_code(api, RICH)))
    assert (status, item_of(answer)["item_status"]["code"]) == (200, 800)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"root": {}},
        {"root": {"redeem": []}},
        {"root": {"redeem": [redeem_body(RICH, 1, "X")["root"]["redeem"][0]] * 2}},
        redeem_body(RICH, 0, "X"),
        redeem_body(RICH, -5, "X"),
        redeem_body(RICH, 1.5, "X"),
        redeem_body(RICH, "ten", "X"),
        redeem_body(RICH, True, "X"),
        redeem_body(RICH, 1, 123456),
        {"root": {"redeem": [{"points_redeemed": 1, "customer": {"passport": "1"}}]}},
        {"root": {"redeem": [{"points_redeemed": 1, "customer": "919777785205"}]}},
        [1],
    ],
)
async def test_malformed_redeem_bodies_are_400_in_the_v11_envelope(
    api: Api, fake: FakeCapillary, body: Any
) -> None:
    status, _, answer = await api.redeem(body)
    assert status == 400
    assert set(answer["response"]) == {"status"}
    assert answer["response"]["status"]["code"] == 400
    assert fake.state.redemptions == []


async def test_redeem_in_an_unknown_program_is_885(api: Api) -> None:
    status, _, body = await api.redeem(redeem_body(RICH, 1, "X"), program_id="12345")
    assert (status, body["response"]["status"]["code"]) == (400, 885)


# -- transfer ----------------------------------------------------------------------------------


async def test_transfer_moves_points_and_answers_201_in_the_shape_of_its_example(
    api: Api, fake: FakeCapillary
) -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    status, headers, body = await api.transfer(transfer_body(pointsTobeTransferred=2, notes="hi"))
    assert status == 201
    assert headers["X-Cap-Requestid"]
    assert shape(body) == shape(sample("transfer_openapi_201.json"))
    [item] = body["data"]
    assert (item["fromEntityId"], item["toEntityId"], item["pointsTransferred"]) == (
        564955302,
        564955411,
        2,
    )
    assert item["pointsTransferBreakupByEarningPrograms"] == [
        # 498 transaction points and 100 of the creation are left.
        {"programId": 973, "deductedPoints": 2, "programCurrentPoints": 598}
    ]
    assert (item["notes"], item["transferType"]) == ("hi", "DEDUCTION")
    assert item["transferredTo"] == {
        "userId": 564955411,
        "firstName": "testgrp5",
        "lastName": "testgrpv2",
    }
    when = datetime.fromisoformat(item["pointsTransferDateISO"].replace("Z", "+00:00"))
    assert before <= when <= datetime.now(timezone.utc) + timedelta(seconds=1)
    assert item["pointsTransferDate"] == when.strftime("%Y-%m-%d %H:%M:%S")
    assert points_of(fake, SENDER) == (498.0, 100.0)
    assert points_of(fake, RECEIVER) == (2.0, 100.0)
    [done] = fake.state.transfers
    assert (done.transfer_id, done.points) == (item["transferId"], 2)
    # What was received can be passed on.
    back = transfer_body(
        fromCustomerIdentifier={"type": "ID", "value": "564955411"},
        toCustomerIdentifier={"type": "EMAIL", "value": "testgrp4@gmail.com"},
        pointsTobeTransferred=2,
    )
    assert (await api.transfer(back))[0] == 201
    assert points_of(fake, SENDER) == (500.0, 100.0)


async def test_a_transfer_needs_the_otp_once_one_was_issued_and_uses_it_up(
    api: Api, fake: FakeCapillary
) -> None:
    await api.check(check_body(issueOtp=True))
    otp = fake.state.otp_for(SENDER, scope="transfer")
    assert otp is not None
    for code in (None, "000000", otp.lower()):
        status, _, body = await api.transfer(transfer_body(code=code))
        assert (status, body["errors"][0]["code"]) == (400, 605)
        assert body["errors"][0]["message"] == "OTP is either invalid, expired, or null"
    assert points_of(fake, SENDER) == (500.0, 100.0)
    assert (await api.transfer(transfer_body(code=otp)))[0] == 201
    assert fake.state.otp_for(SENDER, scope="transfer") is None
    # Used up: quoting it again is quoting no valid code; no code at all is fine again.
    assert (await api.transfer(transfer_body(code=otp)))[2]["errors"][0]["code"] == 605
    assert (await api.transfer(transfer_body()))[0] == 201
    assert points_of(fake, SENDER) == (498.0, 100.0)


async def test_a_validation_code_is_no_transfer_otp(api: Api) -> None:
    code = await issued_code(api, SENDER)
    assert (await api.transfer(transfer_body(code=code)))[2]["errors"][0]["code"] == 605


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"pointsTobeTransferred": 501}, 422),  # the 100 of its creation do not transfer
        ({"pointsTobeTransferred": 1.5}, 807),
        ({"pointsTobeTransferred": 0}, 422),
        ({"toCustomerIdentifier": {"type": "MOBILE", "value": SENDER}}, 418),
        ({"toCustomerIdentifier": {"type": "MOBILE", "value": "9999999999"}}, 8015),
        ({"fromCustomerIdentifier": {"type": "PASSPORT", "value": "1"}}, 8013),
        ({"programId": 12345}, 885),
        ({"groupProgramTransfer": True}, 3316),
        ({"code": 123456}, 400),
    ],
)
async def test_refused_transfers_move_nothing(
    api: Api, fake: FakeCapillary, overrides: dict[str, Any], code: int
) -> None:
    status, _, body = await api.transfer(transfer_body(**overrides))
    assert status == 400
    assert set(body) == {"warnings", "errors"}
    [error] = body["errors"]
    assert (error["status"], error["code"]) == (False, code)
    assert fake.state.transfers == []
    assert points_of(fake, SENDER) == (500.0, 100.0)


# -- both flows through the library's client ---------------------------------------------------


async def test_the_redeem_flow_through_the_client() -> None:
    mobile = Identifier.mobile(RICH)
    async with (
        FakeCapillary() as fake,
        CapillaryClient(fake.url, BasicAuth("sandbox", "sandbox"), rate_limit=None) as client,
    ):
        await client.points.issue_validation_code(mobile, points=25)
        code = fake.state.otp_for(RICH)
        assert code is not None
        check = await client.points.is_redeemable(
            mobile, points=25, program_id=973, validation_code=code
        )
        assert check.redeemable is True
        done = await client.points.redeem(
            mobile, points=25, validation_code=code, transaction_number="bill-1"
        )
        assert (done.points_redeemed, done.balance) == (25, 4975.0)
        assert done.side_effects is not None
        assert done.side_effects.effect[0].validation_code == code
        assert points_of(fake, RICH) == (4975.0, 0.0)
        with pytest.raises(InvalidValidationCodeError) as reused:
            await client.points.redeem(mobile, points=25, validation_code=code)
        assert reused.value.code == 808
        assert points_of(fake, RICH) == (4975.0, 0.0)
        with pytest.raises(InsufficientPointsError):
            await client.points.is_redeemable(mobile, points=4976)
        await client.points.issue_validation_code(mobile)
        with pytest.raises(InsufficientPointsError) as too_many:
            await client.points.redeem(
                mobile, points=4976, validation_code=fake.state.otp_for(RICH) or ""
            )
        assert too_many.value.code == 803
    assert len(fake.state.redemptions) == 1


async def test_the_transfer_flow_through_the_client() -> None:
    sender, receiver = Identifier.mobile("9777785206"), Identifier.mobile("9777785207")
    async with (
        FakeCapillary() as fake,
        CapillaryClient(fake.url, BasicAuth("sandbox", "sandbox"), rate_limit=None) as client,
    ):
        check = await client.points.is_transferrable(
            from_customer=sender, to_customer=receiver, points=40, issue_otp=True
        )
        assert check.transferrable is True
        otp = fake.state.otp_for("9777785206", scope="transfer")
        assert otp is not None
        with pytest.raises(InvalidValidationCodeError):
            await client.points.transfer(
                from_customer=sender, to_customer=receiver, points=40, code="000000"
            )
        done = await client.points.transfer(
            from_customer=sender, to_customer=receiver, points=40, program_id=973, code=otp
        )
        assert (done.points_transferred, done.deducted_points) == (40.0, 40.0)
        assert done.transferred_at is not None
        assert points_of(fake, SENDER) == (460.0, 100.0)
        assert points_of(fake, RECEIVER) == (40.0, 100.0)
        with pytest.raises(InsufficientPointsError) as too_many:
            await client.points.transfer(from_customer=sender, to_customer=receiver, points=461)
        assert too_many.value.code == 422
    assert fake.stats.by_status(TRANSFER) == {201: 1, 400: 2}
