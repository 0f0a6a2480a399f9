"""The pure wire protocol: auth header, request building, envelope decoding, the code -> error
table and Retry-After parsing. Bytes and headers in, payloads or typed errors out; no I/O."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from capillary_points_async import (
    APIError,
    AuthenticationError,
    CapillaryError,
    CustomerNotFoundError,
    GroupTransferMismatchError,
    Identifier,
    InvalidIdentifierError,
    InvalidProgramError,
    InvalidRequestError,
    ItemStatus,
    ProfileIdentifier,
    RateLimitedError,
    Region,
    ResponseDecodeError,
    ServerError,
    TransferCheck,
    TransferCheckRequest,
    ValidationCode,
    ValidationCodeRequest,
)
from capillary_points_async._converter import structure
from capillary_points_async._endpoints import ENDPOINTS, Endpoint, canonical_key
from capillary_points_async._endpoints import IS_TRANSFERRABLE as TC_ENDPOINT
from capillary_points_async._endpoints import VALIDATION_CODE as VC_ENDPOINT
from capillary_points_async._protocol import (
    ApiRequest,
    BasicAuth,
    Decoded,
    RawResponse,
    V11Envelope,
    error_class,
    parse_retry_after,
    retry_after,
)

from ._samples import (
    TRANSFER_CHECK_SAMPLES,
    VALIDATION_CODE_SAMPLES,
    raw_response,
    sample_bytes,
    sample_json,
)

NOW = 1_700_000_000.0  # the injected wall clock
VALIDATION_CODE = VC_ENDPOINT.key
IS_TRANSFERRABLE = TC_ENDPOINT.key


def build_validation_code(request: ValidationCodeRequest) -> ApiRequest:
    return VC_ENDPOINT.request(request)


def build_transfer_check(request: TransferCheckRequest) -> ApiRequest:
    return TC_ENDPOINT.request(request)


def decode_validation_code(raw: RawResponse, now: float) -> dict[str, Any]:
    return VC_ENDPOINT.decode(raw, now).fields()


def decode_transfer_check(raw: RawResponse, now: float) -> dict[str, Any]:
    return TC_ENDPOINT.decode(raw, now).fields()


UTC = timezone.utc

# API-NOTES.md, "Authentication": md5("Pass123") and the header it gives (the docs' worked
# example digest bdc87b9c... is wrong).
DOC_USER, DOC_PASSWORD = "store123", "Pass123"
DOC_DIGEST = "2f23fa3579f3f75175793649115c1b25"
DOC_HEADER = "Basic c3RvcmUxMjM6MmYyM2ZhMzU3OWYzZjc1MTc1NzkzNjQ5MTE1YzFiMjU="


def http_date(offset: float) -> str:
    return email.utils.formatdate(NOW + offset, usegmt=True)


# --------------------------------------------------------------------------- auth


def test_basic_auth_header_is_base64_of_user_and_md5_hex() -> None:
    auth = BasicAuth(DOC_USER, DOC_PASSWORD)
    assert auth.header == DOC_HEADER
    assert (
        base64.b64decode(auth.header.removeprefix("Basic ")) == b"store123:" + DOC_DIGEST.encode()
    )
    assert auth.username == DOC_USER


def test_basic_auth_is_not_the_docs_wrong_worked_example() -> None:
    wrong = base64.b64encode(b"store123:bdc87b9c894da5168059e00ebffb9077").decode()
    assert BasicAuth(DOC_USER, DOC_PASSWORD).header != f"Basic {wrong}"


@pytest.mark.parametrize("digest", [DOC_DIGEST, DOC_DIGEST.upper()])
def test_from_md5_equals_the_hashed_form(digest: str) -> None:
    auth = BasicAuth.from_md5(DOC_USER, digest)
    assert auth.header == DOC_HEADER
    assert auth == BasicAuth(DOC_USER, DOC_PASSWORD)
    assert hash(auth) == hash(BasicAuth(DOC_USER, DOC_PASSWORD))


def test_basic_auth_differs_per_password_and_user() -> None:
    auth = BasicAuth(DOC_USER, DOC_PASSWORD)
    assert auth != BasicAuth(DOC_USER, "Pass124")
    assert auth != BasicAuth("store124", DOC_PASSWORD)
    assert auth != DOC_HEADER


def test_basic_auth_hashes_non_ascii_passwords_as_utf8() -> None:
    digest = hashlib.md5("pässwörd".encode(), usedforsecurity=False).hexdigest()
    assert BasicAuth("till", "pässwörd") == BasicAuth.from_md5("till", digest)


@pytest.mark.parametrize(
    "auth",
    [BasicAuth(DOC_USER, DOC_PASSWORD), BasicAuth.from_md5(DOC_USER, DOC_DIGEST)],
    ids=["password", "digest"],
)
def test_basic_auth_never_shows_its_secrets(auth: BasicAuth) -> None:
    token = DOC_HEADER.removeprefix("Basic ")
    for text in (repr(auth), str(auth), f"{auth}", f"{auth!r}"):
        assert DOC_USER in text
        for secret in (DOC_PASSWORD, DOC_DIGEST, DOC_DIGEST.upper(), token):
            assert secret not in text
    assert not hasattr(auth, "__dict__")  # slotted: the plain password has nowhere to hide


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("", "Pass123"),
        ("till:1", "Pass123"),
        (None, "Pass123"),
        (123, "Pass123"),
        ("till", ""),
        ("till", None),
        ("till", b"Pass123"),
    ],
)
def test_basic_auth_rejects_bad_input(username: Any, password: Any) -> None:
    with pytest.raises(InvalidRequestError):
        BasicAuth(username, password)


@pytest.mark.parametrize(
    ("username", "digest"),
    [
        ("till", ""),
        ("till", DOC_DIGEST[:-1]),
        ("till", DOC_DIGEST + "0"),
        ("till", "g" * 32),
        ("till", None),
        ("till", DOC_PASSWORD),
        ("", DOC_DIGEST),
        ("a:b", DOC_DIGEST),
    ],
)
def test_from_md5_rejects_bad_input(username: Any, digest: Any) -> None:
    with pytest.raises(InvalidRequestError) as info:
        BasicAuth.from_md5(username, digest)
    if isinstance(digest, str) and digest:
        assert digest not in str(info.value)


# --------------------------------------------------------------------------- hosts, keys


@pytest.mark.parametrize(
    ("region", "url"),
    [
        (Region.APAC, "https://apac.api.capillarytech.com"),
        (Region.APAC2, "https://apac2.api.capillarytech.com"),
        (Region.EU, "https://eu.api.capillarytech.com"),
        (Region.US, "https://us.api.capillarytech.com"),
        (Region.CHINA, "https://api.capillarytech.cn.com"),
    ],
)
def test_regions_are_the_documented_hosts(region: Region, url: str) -> None:
    assert region.value == url
    assert str(region) == url
    assert f"{region}/v2" == f"{url}/v2"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("v1.1/points/validationcode", VALIDATION_CODE),
        ("v2/points/isTransferrable", IS_TRANSFERRABLE),
        ("v2/points/isTransferable", IS_TRANSFERRABLE),  # the OpenAPI spelling
    ],
)
def test_canonical_key(key: str, expected: str) -> None:
    assert canonical_key(key) == expected


@pytest.mark.parametrize("key", ["", "points/validationcode", "/v1.1/points/validationcode", "v2"])
def test_canonical_key_rejects_unknown_keys(key: str) -> None:
    with pytest.raises(InvalidRequestError, match="unknown endpoint key"):
        canonical_key(key)


@pytest.mark.parametrize(
    ("endpoint", "method", "request_type", "model", "idempotent"),
    [
        (VC_ENDPOINT, "GET", ValidationCodeRequest, ValidationCode, True),
        (TC_ENDPOINT, "POST", TransferCheckRequest, TransferCheck, True),
    ],
)
def test_each_endpoint_is_declared_once(
    endpoint: Endpoint[Any, Any], method: str, request_type: type, model: type, idempotent: bool
) -> None:
    assert (endpoint.method, endpoint.request_type, endpoint.model, endpoint.idempotent) == (
        method,
        request_type,
        model,
        idempotent,
    )
    assert [e.key for e in ENDPOINTS].count(endpoint.key) == 1


def test_decoders_leave_the_wire_item_untouched() -> None:
    body = sample_bytes("istransferrable_page_200.json")
    decoded = TC_ENDPOINT.decode(raw_response(body, 200, request_id="rid-1"), NOW)
    assert decoded.item == orjson.loads(body)["data"][0]  # no request_id or warnings written in
    assert (decoded.request_id, decoded.warnings) == ("rid-1", [])
    fields = decoded.fields()
    assert (fields["request_id"], fields["warnings"]) == ("rid-1", [])
    assert "request_id" not in decoded.item


def test_the_v11_decoder_finds_the_item_at_its_declared_path() -> None:
    envelope = V11Envelope(("points", "redeemable"))
    body = {
        "response": {
            "status": {"success": "true", "code": 200, "message": "Success"},
            "points": {"redeemable": {"is_redeemable": "true", "item_status": {"success": "true"}}},
        }
    }
    decoded = envelope.decode(raw_response(orjson.dumps(body), 200), NOW, "test", {})
    assert decoded == Decoded(body["response"]["points"]["redeemable"], "req-0001")
    with pytest.raises(ResponseDecodeError, match=r"no 'response\.points\.missing' object"):
        V11Envelope(("points", "missing")).decode(
            raw_response(orjson.dumps(body), 200), NOW, "t", {}
        )


def test_an_endpoints_own_codes_come_before_the_shared_table() -> None:
    assert error_class(400, 3316, TC_ENDPOINT.codes) is GroupTransferMismatchError
    assert error_class(400, 3316, VC_ENDPOINT.codes) is APIError
    assert error_class(400, 816, {816: InvalidProgramError}) is InvalidProgramError
    assert error_class(400, 816, TC_ENDPOINT.codes) is CustomerNotFoundError


# --------------------------------------------------------------------------- requests


@pytest.mark.parametrize(
    ("identifier", "name"),
    [
        (Identifier.mobile("919777785205"), "mobile"),
        (Identifier.email("testgrp3@gmail.com"), "email"),
        (Identifier.external_id("434547"), "external_id"),
        (Identifier.card_number("CARD-1"), "card_number"),
        (Identifier.card_external_id("CX-1"), "card_external_id"),
        (Identifier.user_id(564955302), "id"),
    ],
)
def test_validation_code_query_names_each_identifier_type(
    identifier: Identifier, name: str
) -> None:
    request = build_validation_code(ValidationCodeRequest(identifier, points=100))
    assert request.method == "GET"
    assert request.key == request.path == "v1.1/points/validationcode"
    assert request.params == ((name, identifier.value), ("points", "100"), ("format", "json"))
    assert request.body is None


def test_validation_code_query_without_points_omits_them() -> None:
    request = build_validation_code(ValidationCodeRequest(Identifier.external_id("434547")))
    assert request.params == (("external_id", "434547"), ("format", "json"))


def test_validation_code_query_sends_integral_float_points_as_an_integer() -> None:
    request = build_validation_code(ValidationCodeRequest(Identifier.mobile("9197"), points=5.0))
    assert ("points", "5") in request.params


# The body of the Check points transferability page's curl, in the page's key order.
PAGE_BODY = {
    "pointsTobeTransferred": 1,
    "groupProgramTransfer": False,
    "programId": 973,
    "fromCustomerIdentifier": {"type": "MOBILE", "value": "9777785206"},
    "toCustomerIdentifier": {"type": "MOBILE", "value": "9777785207"},
    "issueOtp": False,
}


def test_transfer_check_body_is_the_pages_body_byte_for_byte() -> None:
    request = build_transfer_check(
        TransferCheckRequest(
            from_customer=Identifier.mobile("9777785206"),
            to_customer=Identifier.mobile("9777785207"),
            points=1,
            program_id=973,
            group_program_transfer=False,
            issue_otp=False,
        )
    )
    assert request.method == "POST"
    assert request.key == request.path == "v2/points/isTransferrable"
    assert request.params == ()
    assert request.body == orjson.dumps(PAGE_BODY)
    assert json.loads(request.body) == PAGE_BODY
    assert b'"groupProgramTransfer":false' in request.body  # a JSON boolean, not "false"


@pytest.mark.parametrize(
    ("identifier", "v2_type"),
    [
        (Identifier.mobile("9777785206"), "MOBILE"),
        (Identifier.email("a@example.com"), "EMAIL"),
        (Identifier.external_id("434548"), "EXTERNALID"),
        (Identifier.card_number("CARD-1"), "CARDNUMBER"),
        (Identifier.card_external_id("CX-1"), "CARDEXTERNALID"),
        (Identifier.user_id("564955302"), "ID"),
    ],
)
def test_transfer_check_body_uses_v2_type_spellings(identifier: Identifier, v2_type: str) -> None:
    other = Identifier.mobile("9777785207")
    assert identifier.type.v2_type == v2_type
    body = json.loads(
        build_transfer_check(
            TransferCheckRequest(from_customer=identifier, to_customer=other, points=3)
        ).body
        or b""
    )
    assert body["fromCustomerIdentifier"] == {"type": v2_type, "value": identifier.value}
    body = json.loads(
        build_transfer_check(
            TransferCheckRequest(from_customer=other, to_customer=identifier, points=3)
        ).body
        or b""
    )
    assert body["toCustomerIdentifier"] == {"type": v2_type, "value": identifier.value}


def test_transfer_check_body_defaults_omit_program_id_and_send_false_flags() -> None:
    request = build_transfer_check(
        TransferCheckRequest(
            from_customer=Identifier.mobile("9777785206"),
            to_customer=Identifier.mobile("9777785207"),
            points=250,
        )
    )
    body = json.loads(request.body or b"")
    assert "programId" not in body
    assert body == {
        "pointsTobeTransferred": 250,
        "groupProgramTransfer": False,
        "fromCustomerIdentifier": {"type": "MOBILE", "value": "9777785206"},
        "toCustomerIdentifier": {"type": "MOBILE", "value": "9777785207"},
        "issueOtp": False,
    }


def test_transfer_check_body_sends_true_flags_as_json_booleans() -> None:
    request = build_transfer_check(
        TransferCheckRequest(
            from_customer=Identifier.mobile("9777785206"),
            to_customer=Identifier.mobile("9777785207"),
            points=2.0,
            program_id=974,
            group_program_transfer=True,
            issue_otp=True,
        )
    )
    body = json.loads(request.body or b"")
    assert body["groupProgramTransfer"] is True
    assert body["issueOtp"] is True
    assert body["programId"] == 974
    assert body["pointsTobeTransferred"] == 2
    assert isinstance(body["pointsTobeTransferred"], int)


# --------------------------------------------------------------------------- decoding samples


def decode_vc(raw: RawResponse) -> ValidationCode:
    return structure(decode_validation_code(raw, NOW), ValidationCode, VALIDATION_CODE)


def decode_tc(raw: RawResponse) -> TransferCheck:
    return structure(decode_transfer_check(raw, NOW), TransferCheck, IS_TRANSFERRABLE)


def test_validation_code_page_sample_decodes() -> None:
    raw = raw_response(sample_bytes("validationcode_page_200.json"), request_id="a1b2c3")
    assert decode_vc(raw) == ValidationCode(
        mobile="919777785205",
        email="testgrp3@gmail.com",
        external_id="434547",
        user_id=None,
        points=-100,
        item_status=ItemStatus(success=True, code=200, message="Validation Code Issued by SMS"),
        request_id="a1b2c3",
    )


def test_validation_code_openapi_sample_decodes() -> None:
    raw = raw_response(sample_bytes("validationcode_openapi_200.json"), request_id="d4e5")
    assert decode_vc(raw) == ValidationCode(
        mobile="919777722334",
        email="testgrp3@gmail.com",
        external_id="434547",
        points=100,
        item_status=ItemStatus(
            success=True, code=200, message="Validation Code Issued by SMS and Email"
        ),
        request_id="d4e5",
    )


@pytest.mark.parametrize("name", VALIDATION_CODE_SAMPLES + TRANSFER_CHECK_SAMPLES)
def test_request_id_header_is_read_case_insensitively(name: str) -> None:
    raw = RawResponse(200, CIMultiDict({"x-cap-requestid": "lower-7"}), sample_bytes(name))
    decoded = decode_vc(raw) if name.startswith("validation") else decode_tc(raw)
    assert decoded.request_id == "lower-7"


@pytest.mark.parametrize("name", VALIDATION_CODE_SAMPLES + TRANSFER_CHECK_SAMPLES)
def test_missing_request_id_header_gives_none(name: str) -> None:
    raw = raw_response(sample_bytes(name), request_id=None)
    decoded = decode_vc(raw) if name.startswith("validation") else decode_tc(raw)
    assert decoded.request_id is None


@pytest.mark.parametrize(
    ("name", "from_email", "to_email"),
    [
        ("istransferrable_page_200.json", "[email protected]", "[email protected]"),
        ("istransferrable_openapi_200.json", "testgrp4@gmail.com", "testgrp5@gmail.com"),
    ],
)
def test_transfer_check_samples_decode(name: str, from_email: str, to_email: str) -> None:
    check = decode_tc(raw_response(sample_bytes(name), request_id="rq-42"))
    assert check.transferrable is True
    assert check.points == 1.0
    assert isinstance(check.points, float)
    assert check.warnings == ()
    assert check.request_id == "rq-42"

    source = check.transfer_from
    assert source.id == 564955302
    assert source.segments == {}
    assert source.extended_fields == {}
    (profile,) = source.profiles
    assert (profile.first_name, profile.last_name) == ("testgrp4", "testgrpv2")
    assert profile.identifiers == (
        ProfileIdentifier("mobile", "919777785206"),
        ProfileIdentifier("externalId", "434548"),
        ProfileIdentifier("email", from_email),
    )
    assert profile.identifiers_all == profile.identifiers
    assert [(c.type, c.value, c.primary, c.verified) for c in profile.comm_channels] == [
        ("mobile", "919777785206", True, False),
        ("email", from_email, True, False),
    ]
    assert profile.comm_channels[0].meta == {"residence": False, "office": False}
    assert profile.source == "INSTORE"
    assert profile.user_id == 564955302
    assert profile.account_id == ""
    assert profile.conflicting_profile_list == ()
    assert profile.auto_update_time == datetime(2025, 10, 7, 10, 15, 10, tzinfo=UTC)
    assert profile.attribution is not None
    assert profile.attribution.create_date == datetime(2025, 2, 18, 5, 14, 32, tzinfo=UTC)
    assert profile.attribution.modified_date == datetime(2025, 6, 2, 11, 26, 52, tzinfo=UTC)
    creator = profile.attribution.created_by
    assert creator is not None
    assert (creator.id, creator.code, creator.name, creator.type) == (
        75155295,
        "sant.p_123",
        "sant.p_123",
        "TILL",
    )
    assert creator.reference_id == -1
    assert creator.default is False
    loyalty = source.loyalty_info
    assert loyalty is not None
    assert loyalty.loyalty_type == "loyalty"
    assert loyalty.lifetime_purchases == 50000.0
    assert isinstance(loyalty.lifetime_purchases, float)
    assert loyalty.attribution_v2 is not None
    assert loyalty.attribution_v2.create_date == datetime(2025, 2, 18, 5, 14, 32, tzinfo=UTC)

    target = check.transfer_to
    assert target.id == 564955411
    (profile,) = target.profiles
    assert profile.first_name == "testgrp5"
    assert profile.identifiers == (
        ProfileIdentifier("mobile", "919777785207"),
        ProfileIdentifier("email", to_email),
        ProfileIdentifier("externalId", "434549"),
    )
    assert profile.attribution is not None
    assert profile.attribution.create_date == datetime(2025, 2, 18, 5, 53, 34, tzinfo=UTC)
    assert target.loyalty_info is not None
    assert target.loyalty_info.lifetime_purchases == 50000.0


def test_transfer_check_keeps_the_envelopes_warnings() -> None:
    doc = sample_json("istransferrable_page_200.json")
    doc["warnings"] = [{"code": 1, "message": "heads up"}]
    check = decode_tc(raw_response(doc))
    assert check.warnings == ({"code": 1, "message": "heads up"},)


def test_transfer_check_reports_a_false_verdict() -> None:
    doc = sample_json("istransferrable_openapi_200.json")
    doc["data"][0]["transferrable"] = False
    assert decode_tc(raw_response(doc)).transferrable is False


@pytest.mark.parametrize("errors_value", [[], None], ids=["empty", "null"])
def test_transfer_check_with_empty_or_null_errors_and_data_succeeds(errors_value: Any) -> None:
    doc = sample_json("istransferrable_openapi_200.json")
    doc["errors"] = errors_value
    assert decode_tc(raw_response(doc)).transferrable is True


def test_transfer_check_without_errors_key_succeeds() -> None:
    doc = sample_json("istransferrable_openapi_200.json")
    del doc["errors"], doc["warnings"]
    check = decode_tc(raw_response(doc))
    assert check.transferrable is True
    assert check.warnings == ()


# --------------------------------------------------------------------------- error shapes

HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
HTML_401 = "<html><body><h1>401 Authorization Required</h1></body></html>"


def v11_status(success: Any, code: Any, message: str) -> dict[str, Any]:
    return {"response": {"status": {"success": success, "code": code, "message": message}}}


def v11_item(code: Any, message: str, *, top_code: Any = 500, success: Any = "false") -> Any:
    return {
        "response": {
            "status": {
                "success": "false",
                "code": top_code,
                "message": "All requests have failed due to errors",
            },
            "validation_code": {
                "code": {
                    "mobile": "919000000000",
                    "points": 100,
                    "item_status": {"success": success, "code": code, "message": message},
                }
            },
        }
    }


def v2_errors(code: Any, message: str) -> dict[str, Any]:
    return {"errors": [{"status": False, "code": code, "message": message}]}


def expect_error(
    exc: BaseException,
    cls: type[APIError],
    *,
    status: int,
    code: int,
    message: str | None,
    request_id: str | None = "req-0001",
    retry_after: float | None = None,
) -> None:
    assert type(exc) is cls
    assert isinstance(exc, APIError)
    assert exc.status == status
    assert exc.code == code
    if message is not None:
        assert exc.message == message
    else:
        assert str(status) in exc.message
    assert exc.request_id == request_id
    assert exc.retry_after == retry_after
    assert exc.retryable is (cls in (ServerError, RateLimitedError))


# (id, HTTP status, body, extra headers, class, code, message) for v1.1 validationcode
V11_ERRORS = [
    (
        "status-401",
        200,
        v11_status("false", 401, "Unauthorized"),
        {},
        AuthenticationError,
        401,
        "Unauthorized",
    ),
    (
        "status-517",
        200,
        v11_status("false", 517, "Rate limit exceeded"),
        {},
        RateLimitedError,
        517,
        "Rate limit exceeded",
    ),
    (
        "status-400",
        200,
        v11_status("false", 400, "Bad Request"),
        {},
        APIError,
        400,
        "Bad Request",
    ),
    (
        "status-bool-false",
        200,
        v11_status(False, 401, "Unauthorized"),
        {},
        AuthenticationError,
        401,
        "Unauthorized",
    ),
    (
        "status-code-string",
        200,
        v11_status("false", "517", "Rate limit exceeded"),
        {},
        RateLimitedError,
        517,
        "Rate limit exceeded",
    ),
    (
        "item-816",
        200,
        v11_item(816, "Customer not found for organization"),
        {},
        CustomerNotFoundError,
        816,
        "Customer not found for organization",
    ),
    (
        "item-816-strings",
        200,
        v11_item("816", "Customer not found for organization", top_code="500"),
        {},
        CustomerNotFoundError,
        816,
        "Customer not found for organization",
    ),
    (
        "item-802",
        200,
        v11_item(802, "Invalid identifier"),
        {},
        InvalidIdentifierError,
        802,
        "Invalid identifier",
    ),
    (
        "item-unknown-9999",
        200,
        v11_item(9999, "Something new"),
        {},
        APIError,
        9999,
        "Something new",
    ),
    (
        "item-816-under-http-400",
        400,
        v11_item(816, "Customer not found for organization"),
        {},
        CustomerNotFoundError,
        816,
        "Customer not found for organization",
    ),
    (
        "http-401-json",
        401,
        v11_status("false", 401, "Invalid credentials"),
        {},
        AuthenticationError,
        401,
        "Invalid credentials",
    ),
    ("http-401-html", 401, HTML_401, {}, AuthenticationError, 401, None),
    (
        "http-429-json",
        429,
        v11_status("false", 517, "Rate limit exceeded"),
        {},
        RateLimitedError,
        517,
        "Rate limit exceeded",
    ),
    ("http-429-html", 429, "<html>Too Many Requests</html>", {}, RateLimitedError, 429, None),
    (
        "http-500-json",
        500,
        v11_status("false", 500, "Internal error"),
        {},
        ServerError,
        500,
        "Internal error",
    ),
    ("http-500-html", 500, "<html>oops</html>", {}, ServerError, 500, None),
    ("http-502-html", 502, HTML_502, {}, ServerError, 502, None),
    ("http-503-html", 503, "<html>Service Unavailable</html>", {}, ServerError, 503, None),
    ("http-503-empty", 503, b"", {}, ServerError, 503, None),
    ("http-404-html", 404, "<html>Not Found</html>", {}, APIError, 404, None),
    ("http-400-json-string", 400, '"{}"', {}, APIError, 400, None),
]


@pytest.mark.parametrize(
    ("status", "body", "headers", "cls", "code", "message"),
    [case[1:] for case in V11_ERRORS],
    ids=[case[0] for case in V11_ERRORS],
)
def test_validation_code_error_shapes(
    status: int,
    body: Any,
    headers: dict[str, str],
    cls: type[APIError],
    code: int,
    message: str | None,
) -> None:
    with pytest.raises(APIError) as info:
        decode_validation_code(raw_response(body, status, **headers), NOW)
    expect_error(info.value, cls, status=status, code=code, message=message)


def test_validation_code_item_error_wins_over_request_level_500() -> None:
    # Both levels failed: the item says why (816), the request level only "all failed" (500).
    with pytest.raises(CustomerNotFoundError) as info:
        decode_validation_code(raw_response(v11_item(816, "Customer not found")), NOW)
    assert info.value.code == 816
    assert "All requests have failed" not in info.value.message


def test_validation_code_failed_item_under_a_successful_status_is_an_error() -> None:
    body = v11_item(816, "Customer not found")
    body["response"]["status"] = {"success": "true", "code": 201, "message": "Some failed"}
    with pytest.raises(CustomerNotFoundError):
        decode_validation_code(raw_response(body), NOW)


# (id, HTTP status, body, class, code, message) for v2 isTransferrable
V2_CODES = [
    (8015, CustomerNotFoundError, "Costumer not found for the given identifiers"),
    (885, InvalidProgramError, "Invalid program id passed"),
    (8013, InvalidIdentifierError, "Invalid identifier passed"),
    (3316, GroupTransferMismatchError, "Group redemption action executed for non-group"),
    (434, InvalidIdentifierError, "Invalid identifier value/type"),
    (802, InvalidIdentifierError, "Invalid identifier"),
    (
        521,
        ServerError,
        "Multiple actions are running for the same customer. Please try after some time",
    ),
    (9999, APIError, "A code nobody documented"),
    (418, APIError, "from and to customer are the same"),
]
V2_ERRORS = [
    (f"{code}-under-http-{status}", status, v2_errors(code, message), cls, code, message)
    for code, cls, message in V2_CODES
    for status in (400, 200)
] + [
    (
        "8015-as-string",
        400,
        v2_errors("8015", "Customer not found"),
        CustomerNotFoundError,
        8015,
        "Customer not found",
    ),
    (
        "first-error-wins",
        400,
        {"errors": [{"code": 885, "message": "bad program"}, {"code": 8015, "message": "nf"}]},
        InvalidProgramError,
        885,
        "bad program",
    ),
    (
        "errors-next-to-data",
        200,
        {**sample_json("istransferrable_page_200.json"), **v2_errors(8013, "Invalid identifier")},
        InvalidIdentifierError,
        8013,
        "Invalid identifier",
    ),
    (
        "http-401-json",
        401,
        v2_errors(401, "Invalid credentials"),
        AuthenticationError,
        401,
        "Invalid credentials",
    ),
    ("http-401-html", 401, HTML_401, AuthenticationError, 401, None),
    ("http-429-json", 429, v2_errors(429, "Too many"), RateLimitedError, 429, "Too many"),
    ("http-429-html", 429, "<html>429</html>", RateLimitedError, 429, None),
    ("http-500-json", 500, v2_errors(500, "Internal"), ServerError, 500, "Internal"),
    ("http-500-html", 500, "<html>500</html>", ServerError, 500, None),
    ("http-502-html", 502, HTML_502, ServerError, 502, None),
    ("http-503-html", 503, "<html>503</html>", ServerError, 503, None),
    (
        "http-521-json",
        521,
        v2_errors(521, "Multiple actions"),
        ServerError,
        521,
        "Multiple actions",
    ),
    ("http-400-no-body", 400, b"", APIError, 400, None),
    ("http-400-json-string", 400, '"{}"', APIError, 400, None),
    ("http-403-json-no-errors", 403, {"data": []}, APIError, 403, None),
]


@pytest.mark.parametrize(
    ("status", "body", "cls", "code", "message"),
    [case[1:] for case in V2_ERRORS],
    ids=[case[0] for case in V2_ERRORS],
)
def test_transfer_check_error_shapes(
    status: int, body: Any, cls: type[APIError], code: int, message: str | None
) -> None:
    with pytest.raises(APIError) as info:
        decode_transfer_check(raw_response(body, status), NOW)
    expect_error(info.value, cls, status=status, code=code, message=message)


def test_unknown_code_is_a_plain_api_error_carrying_it() -> None:
    with pytest.raises(APIError) as info:
        decode_transfer_check(raw_response(v2_errors(9999, "new")), NOW)
    assert type(info.value) is APIError
    assert info.value.code == 9999
    assert info.value.retryable is False
    assert "9999" in str(info.value)


@pytest.mark.parametrize("decode", [decode_validation_code, decode_transfer_check])
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"Retry-After": http_date(30)}, 30.0),
        ({"Retry-After": http_date(-30)}, 0.0),
        ({"X-RateLimit-Reset": str(int(NOW) + 45)}, 45.0),
        ({"RateLimit-Reset": "12"}, 12.0),
        ({}, None),
    ],
    ids=["seconds", "lower-case", "date", "past-date", "x-reset-epoch", "reset-delay", "none"],
)
def test_retry_after_lands_on_the_error(
    decode: Any, headers: dict[str, str], expected: float | None
) -> None:
    raw = raw_response("<html>Too Many Requests</html>", 429)
    headers_ci = CIMultiDict(raw.headers)
    headers_ci.extend(headers)
    with pytest.raises(RateLimitedError) as info:
        decode(RawResponse(429, headers_ci, raw.body), NOW)
    assert info.value.retry_after == expected
    assert info.value.request_id == "req-0001"


def test_retry_after_lands_on_an_envelope_rate_limit() -> None:
    raw = raw_response(v11_status("false", 517, "Rate limit exceeded"), Retry_After="3")
    with pytest.raises(RateLimitedError) as info:
        decode_validation_code(raw, NOW)
    assert (info.value.status, info.value.code, info.value.retry_after) == (200, 517, 3.0)


def test_retry_after_lands_on_a_server_error() -> None:
    raw = raw_response(HTML_502, 503, Retry_After=http_date(90))
    with pytest.raises(ServerError) as info:
        decode_transfer_check(raw, NOW)
    assert info.value.retry_after == 90.0


TRUNCATED_VC = sample_bytes("validationcode_page_200.json")[:200]
TRUNCATED_TC = sample_bytes("istransferrable_page_200.json")[:1000]


@pytest.mark.parametrize(
    ("decode", "body"),
    [
        (decode_validation_code, "<html><body>Maintenance</body></html>"),
        (decode_validation_code, TRUNCATED_VC),
        (decode_validation_code, b""),
        (decode_transfer_check, "<html><body>Maintenance</body></html>"),
        (decode_transfer_check, TRUNCATED_TC),
        (decode_transfer_check, b"\xff\xfe not utf-8"),
    ],
    ids=["vc-html", "vc-truncated", "vc-empty", "tc-html", "tc-truncated", "tc-binary"],
)
def test_http_200_that_is_not_json_is_a_decode_error(decode: Any, body: bytes | str) -> None:
    with pytest.raises(ResponseDecodeError) as info:
        decode(raw_response(body, 200, request_id="rid-html"), NOW)
    error = info.value
    assert error.status == 200
    assert error.request_id == "rid-html"
    assert "rid-html" in str(error)
    assert "not JSON" in str(error)
    assert not isinstance(error, APIError)
    # A body cut short by a proxy or a reset looks exactly like this: retry it like a reset.
    assert error.retryable is True


@pytest.mark.parametrize(
    "body",
    [
        {"data": [], "warnings": [], "errors": []},
        {"warnings": [], "errors": []},
        {"errors": None},
        {"data": None},
        {"data": ["not an object"]},
        {},
    ],
    ids=["empty-data", "no-data", "null-errors", "null-data", "data-not-object", "empty-object"],
)
def test_transfer_check_without_data_or_errors_is_a_decode_error(body: Any) -> None:
    with pytest.raises(ResponseDecodeError, match=r"data\[0\]") as info:
        decode_transfer_check(raw_response(body, request_id="rid-nd"), NOW)
    assert info.value.request_id == "rid-nd"
    assert info.value.status == 200


@pytest.mark.parametrize("body", ["[]", "null", '"{}"', "42"])
def test_transfer_check_non_object_json_is_a_decode_error(body: str) -> None:
    with pytest.raises(ResponseDecodeError, match="not a JSON object"):
        decode_transfer_check(raw_response(body), NOW)


@pytest.mark.parametrize("body", ["[]", "null", '"{}"', '{"response": []}'])
def test_validation_code_without_response_object_is_a_decode_error(body: str) -> None:
    with pytest.raises(ResponseDecodeError, match="no 'response' object"):
        decode_validation_code(raw_response(body), NOW)


@pytest.mark.parametrize(
    "body",
    [
        {"response": {"status": {"success": "true", "code": 200, "message": "ok"}}},
        {"response": {"status": {"success": "true"}, "validation_code": {"code": None}}},
    ],
)
def test_validation_code_without_code_object_is_a_decode_error(body: Any) -> None:
    with pytest.raises(ResponseDecodeError, match=r"response\.validation_code\.code"):
        decode_validation_code(raw_response(body), NOW)


@pytest.mark.parametrize("body", ["{}", '{"response": {}}'])
def test_validation_code_empty_envelope_fails_to_decode_end_to_end(body: str) -> None:
    with pytest.raises(ResponseDecodeError) as info:
        decode_vc(raw_response(body, request_id="rid-empty"))
    assert info.value.request_id == "rid-empty"


@pytest.mark.parametrize("body", ["{}", '{"response": {}}'])
def test_validation_code_empty_envelope_is_a_shape_error(body: str) -> None:
    with pytest.raises(ResponseDecodeError, match="documented envelope"):
        decode_validation_code(raw_response(body), NOW)


@pytest.mark.parametrize("code", ["--5", "\u00b2"])
@pytest.mark.parametrize("decode", [decode_validation_code, decode_transfer_check])
def test_garbage_code_strings_never_escape_as_value_error(decode: Any, code: str) -> None:
    body = (
        v11_status("false", code, "weird")
        if decode is decode_validation_code
        else v2_errors(code, "weird")
    )
    with pytest.raises(APIError) as info:
        decode(raw_response(body, 400), NOW)
    assert info.value.code == 400


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (v11_status("false", None, "no code"), 400),
        (v11_status("false", 816.5, "float code"), 400),
        (v11_status("false", True, "bool code"), 400),
        (v11_status("false", "abc", "text code"), 400),
        (v11_status("false", " 816 ", "spaced code"), 816),
    ],
    ids=["null", "float", "bool", "text", "spaced"],
)
def test_unreadable_codes_fall_back_to_the_http_status(body: Any, code: int) -> None:
    with pytest.raises(APIError) as info:
        decode_validation_code(raw_response(body, 400), NOW)
    assert info.value.code == code


def test_empty_message_falls_back_to_a_status_message() -> None:
    with pytest.raises(CustomerNotFoundError) as info:
        decode_transfer_check(raw_response(v2_errors(8015, ""), 400), NOW)
    assert info.value.message
    assert "400" in info.value.message


def test_decoders_do_not_need_a_request_id() -> None:
    with pytest.raises(ServerError) as info:
        decode_transfer_check(raw_response(HTML_502, 502, request_id=None), NOW)
    assert info.value.request_id is None


# --------------------------------------------------------------------------- error table


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, None, AuthenticationError),
        (401, 8015, AuthenticationError),
        (429, None, RateLimitedError),
        (429, 816, RateLimitedError),
        (500, None, ServerError),
        (502, 816, ServerError),
        (503, 8015, ServerError),
        (521, None, ServerError),
        (200, 401, AuthenticationError),
        (200, 429, RateLimitedError),
        (200, 517, RateLimitedError),
        (200, 521, ServerError),
        (200, 816, CustomerNotFoundError),
        (400, 8015, CustomerNotFoundError),
        (400, 885, InvalidProgramError),
        (400, 802, InvalidIdentifierError),
        (400, 434, InvalidIdentifierError),
        (400, 8013, InvalidIdentifierError),
        (400, 3316, APIError),  # isTransferrable's own code: not in the shared table
        (400, 9999, APIError),
        (400, None, APIError),
        (404, None, APIError),
        (200, 500, APIError),
    ],
)
def test_error_class_table(status: int, code: int | None, cls: type[APIError]) -> None:
    assert error_class(status, code) is cls


# --------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("5", 5.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("0.25", 0.25),
        (http_date(30), 30.0),
        (http_date(3600), 3600.0),
        (http_date(0), 0.0),
        (http_date(-30), 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("Wed, 99 Foo 2015 07:28:00 GMT", None),
        # invalid delay-seconds are absent, so that the caller's backoff applies
        ("-5", None),
        ("+5", None),
        ("1_000", None),
        ("\u0663", None),  # an Arabic-Indic digit: float() reads it, RFC 9110 does not
        ("1e3", None),
        # dates no datetime holds (email.utils raised OverflowError for these)
        ("Mon, 00 Jan 2147483648 00:00:00 GMT", None),
        ("Mon, 34 Jan 20958008843 29:27:23 -0000", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_measures_dates_from_the_injected_now() -> None:
    date = email.utils.format_datetime(
        datetime.fromtimestamp(NOW, UTC) + timedelta(seconds=75), usegmt=True
    )
    assert parse_retry_after(date, NOW) == 75.0
    assert parse_retry_after(date, NOW + 70) == 5.0
    assert parse_retry_after(date, NOW + 500) == 0.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "5"}, 5.0),
        ({"RateLimit-Reset": "30"}, 30.0),
        ({"X-RateLimit-Reset": "30"}, 30.0),
        ({"ratelimit-reset": "2.5"}, 2.5),
        ({"RateLimit-Reset": str(int(NOW) + 60)}, 60.0),
        ({"X-RateLimit-Reset": str(int(NOW) + 60)}, 60.0),
        ({"X-RateLimit-Reset": str(int(NOW) - 60)}, 0.0),
        ({"X-RateLimit-Reset": http_date(20)}, 20.0),
        ({"Retry-After": "5", "X-RateLimit-Reset": "30"}, 5.0),
        ({"RateLimit-Reset": "10", "X-RateLimit-Reset": "30"}, 10.0),
        ({"Retry-After": "garbage", "X-RateLimit-Reset": "30"}, 30.0),
        ({"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0"}, None),
        ({}, None),
    ],
    ids=[
        "retry-after",
        "ratelimit-reset-delay",
        "x-ratelimit-reset-delay",
        "lower-case",
        "ratelimit-reset-epoch",
        "x-ratelimit-reset-epoch",
        "epoch-in-the-past",
        "reset-as-date",
        "retry-after-first",
        "ietf-before-x",
        "garbage-falls-through",
        "no-reset",
        "none",
    ],
)
def test_retry_after_headers(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(CIMultiDict(headers), NOW) == expected


def test_all_errors_here_are_capillary_errors() -> None:
    with pytest.raises(CapillaryError):
        decode_transfer_check(raw_response("<html/>", 200), NOW)
    with pytest.raises(CapillaryError):
        decode_validation_code(raw_response(HTML_502, 502), NOW)
