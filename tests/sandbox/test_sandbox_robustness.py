"""Requests nobody would send on purpose: the sandbox answers them in a documented envelope,
never with an accidental 500 (issue 10, item 9).

Regression tests for the faults third-party checkers (schemathesis, hypothesis-jsonschema)
found, then property tests: arbitrary queries and bodies thrown at a real local server, and
the shared number parser read against a regular expression.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote_from_bytes

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from capillary_points_async.testing import FakeCapillary, Faults
from capillary_points_async.testing._parsing import int32

from .helpers import (
    CHECK_PATH,
    CODE_PATH,
    REDEEM_PATH,
    REDEEMABLE_PATH,
    TRANSFER_PATH,
    Api,
    check_body,
    redeem_body,
    transfer_body,
)

# Points and program ids are int32 in Capillary's OpenAPI definitions.
INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)


def v11_error_code(body: Any) -> int:
    """The code of a v1.1 request-level failure, checking its envelope on the way."""
    status = body["response"]["status"]
    assert set(body["response"]) == {"status"}
    assert status["success"] == "false"
    assert isinstance(status["message"], str)
    code: int = status["code"]
    return code


def v2_error_code(body: Any) -> int:
    """The code of a v2 failure, checking its envelope on the way."""
    [error] = body["errors"]
    assert "data" not in body
    assert error["status"] is False
    assert isinstance(error["message"], str)
    code: int = error["code"]
    return code


# -- 1 and 4: query points are int32 written in ASCII digits ----------------------------------


@pytest.mark.parametrize(
    "points",
    [
        "18446744073709551616",  # schemathesis' find: 2**64, a 500 before
        str(INT32_MAX + 1),
        str(INT32_MIN - 1),
        "9" * 5000,  # more digits than Python's int() converts
        "1_000",
        "\u0663",  # ARABIC-INDIC DIGIT THREE
        "\u00b2",  # SUPERSCRIPT TWO
        "+5",
        " 5",
        "--5",
        "-",
        "",
    ],
)
async def test_query_points_outside_int32_or_ascii_digits_are_400(api: Api, points: str) -> None:
    status, _, body = await api.code(mobile="919777785205", points=points)
    assert status == 400
    assert v11_error_code(body) == 400


@pytest.mark.parametrize("points", [INT32_MAX, INT32_MIN, 0, -100])
async def test_query_points_at_the_int32_bounds_are_echoed(api: Api, points: int) -> None:
    status, _, body = await api.code(mobile="919777785205", points=str(points))
    assert status == 200
    assert body["response"]["validation_code"]["code"]["points"] == points


# -- 2, 3 and 4: body numbers -------------------------------------------------------------------


@pytest.mark.parametrize(
    "program_id",
    ["\u00b2", "\u0663", "\u0669\u0667\u0663", "1_000", " 973", "+973", 973.5, 2**31 + 973, 2**70],
)
async def test_program_ids_that_are_no_int32_are_885(api: Api, program_id: Any) -> None:
    status, _, body = await api.check(check_body(programId=program_id))
    assert status == 400
    assert v2_error_code(body) == 885


@pytest.mark.parametrize(
    ("overrides", "points"),
    [
        ({"programId": 973.0}, 1.0),
        ({"programId": 974.0, "groupProgramTransfer": True}, 1.0),
        ({"programId": "973"}, 1.0),
        ({"pointsTobeTransferred": 1.0}, 1.0),
        ({"pointsTobeTransferred": 2.0e2}, 200.0),
        ({"pointsTobeTransferred": INT32_MAX}, float(INT32_MAX)),
    ],
)
async def test_integral_floats_are_whole_numbers_in_both_fields(
    api: Api, overrides: dict[str, Any], points: float
) -> None:
    status, _, body = await api.check(check_body(**overrides))
    assert status == 200
    assert body["data"][0]["pointsTobeTransferred"] == points


@pytest.mark.parametrize(
    "points", [INT32_MAX + 1, 2**64, 2**70, 1e10, 1e300, -1e300, "\u0663", "1_000"]
)
async def test_points_outside_int32_are_422(api: Api, points: Any) -> None:
    status, _, body = await api.check(check_body(pointsTobeTransferred=points))
    assert status == 400
    assert v2_error_code(body) == 422


# -- 5: a known path with an undeclared method is 405 -------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", CODE_PATH, "GET"),
        ("POST", CODE_PATH, "GET"),
        ("PUT", CODE_PATH, "GET"),
        ("GET", CHECK_PATH, "POST"),
        ("PATCH", CHECK_PATH, "POST"),
        ("GET", "/v2/points/isTransferable", "POST"),
    ],
)
async def test_an_undeclared_method_is_405_with_allow(
    session: aiohttp.ClientSession, fake: FakeCapillary, method: str, path: str, allow: str
) -> None:
    async with session.request(method, fake.url + path) as response:
        assert response.status == 405
        assert response.headers["Allow"] == allow
        assert response.headers["X-Cap-Requestid"]
        body = await response.json()
    code = v11_error_code(body) if path == CODE_PATH else v2_error_code(body)
    assert code == 405
    # The router answers before the gateway: nothing counts against an endpoint's quota.
    assert fake.arrivals() == []


async def test_unknown_paths_stay_404_whatever_the_method(
    session: aiohttp.ClientSession, fake: FakeCapillary
) -> None:
    for method in ("GET", "POST", "DELETE"):
        async with session.request(method, fake.url + "/v2/points/redeem") as response:
            assert response.status == 404
            assert "Allow" not in response.headers
            assert v2_error_code(await response.json()) == 404


# -- property: whatever arrives, a documented answer --------------------------------------------

# The codes each endpoint may answer besides 200 (API-NOTES.md). The credentials are right and
# the Content-Type is JSON, so neither 401 nor 415 may come back.
V11_CODES = {400, 405}
V2_CODES = {400, 405, 418, 422, 807, 885, 3316, 8013, 8015}
# Numbers at and past every bound the sandbox or its JSON libraries have.
EDGES: list[float] = [0, -1, INT32_MAX, INT32_MAX + 1, INT32_MIN, INT32_MIN - 1, 2**53 + 1]
EDGES += [2**63, 2**64, 2**70, -(2**64), 0.5, 973.0, -0.0, 1e300, 5e-324]
# Characters str.isdigit() takes but int() does not: superscripts, circled digits and the like.
NON_DECIMAL_DIGITS = "".join(
    char for char in map(chr, range(0x10000)) if char.isdigit() and not char.isdecimal()
)
# A sign or blank, then digits of any script, or underscores. A list of characters rather
# than st.text(), whose characters lean to ASCII and would rarely bring the odd digits.
digit_text = st.builds(
    str.__add__,
    st.sampled_from(["", "-", "+", " "]),
    st.lists(
        st.one_of(
            st.sampled_from("0123456789_"),
            st.sampled_from(NON_DECIMAL_DIGITS),
            st.characters(categories=["Nd"]),
        ),
        min_size=1,
        max_size=6,
    ).map("".join),
)
# st.one_of flattens nested one_ofs into one choice among all their leaves, so the edges and
# the odd digits below are not drowned out by arbitrary values.
number_text = st.one_of(st.sampled_from(EDGES).map(str), digit_text, st.integers().map(str))
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.sampled_from(EDGES),
        st.integers(),
        st.floats(allow_nan=False),
        number_text,
        st.text(max_size=20),
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
number_values = st.one_of(st.sampled_from(EDGES), number_text, st.integers(), json_values)
_ABSENT = object()


def around(base: dict[str, Any], values: dict[str, st.SearchStrategy[Any]]) -> Any:
    """Strategy: ``base`` with each field kept, dropped, or replaced by a value from
    ``values``, so that many draws get past the first checks and reach the later ones."""

    def pick(key: str) -> st.SearchStrategy[Any]:
        choice = st.sampled_from(("keep", "keep", "drop", "replace", "replace"))
        return choice.flatmap(
            lambda chosen: (
                values[key]
                if chosen == "replace"
                else st.just(base[key] if chosen == "keep" else _ABSENT)
            )
        )

    return st.fixed_dictionaries({key: pick(key) for key in base}).map(
        lambda drawn: {key: value for key, value in drawn.items() if value is not _ABSENT}
    )


identifier = around(
    {"type": "MOBILE", "value": "9777785207"},
    {"type": st.sampled_from(["ID", "email", "CARDNUMBER"]) | json_values, "value": json_values},
)
body_values = {
    "pointsTobeTransferred": number_values,
    "programId": st.sampled_from([974, "974"]) | number_values,
    "groupProgramTransfer": json_values,
    "issueOtp": json_values,
    "fromCustomerIdentifier": identifier | json_values,
    "toCustomerIdentifier": identifier | json_values,
}
# What reaches the wire: JSON text (json.dumps writes ints of any size), or any bytes at all.
bodies = st.one_of(
    around(check_body(), body_values).map(lambda body: json.dumps(body).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=40),
)
# Query values are bytes, percent-encoded on the way: also bytes that are not UTF-8.
query_values = st.one_of(
    number_text.map(str.encode), st.text(max_size=12).map(str.encode), st.binary(max_size=12)
)
query_keys = ("mobile", "email", "external_id", "card_number", "card_external_id", "id", "format")
queries = st.tuples(
    around(
        {"mobile": b"919777785205", "points": b"100", "format": b"json"},
        {
            "mobile": query_values,
            "points": query_values,
            "format": st.sampled_from([b"xml", b"JSON"]) | query_values,
        },
    ),
    st.dictionaries(st.sampled_from(query_keys) | st.text(max_size=5), query_values, max_size=2),
).map(lambda parts: {**parts[1], **parts[0]})
faults = st.sampled_from([None, Faults(error_rate=0.5), Faults(busy_rate=0.5)])
v2_paths = st.sampled_from([CHECK_PATH, "/v2/points/isTransferable"])


async def send(
    session: aiohttp.ClientSession, url: str, method: str, query: dict[str, bytes], body: bytes
) -> tuple[int, str, bytes]:
    """The status, content type and body of one request; the query's bytes percent-encoded."""
    encoded = "&".join(
        f"{quote_from_bytes(key.encode(), safe='')}={quote_from_bytes(value, safe='')}"
        for key, value in query.items()
    )
    headers = {"Content-Type": "application/json"}
    target = URL(f"{url}?{encoded}", encoded=True)
    async with session.request(method, target, data=body, headers=headers) as response:
        return response.status, response.content_type, await response.read()


def assert_documented(
    status: int, content_type: str, payload: bytes, v2: bool, configured: Faults | None
) -> None:
    """A 5xx only as the configured fault; otherwise the endpoint's own envelope and codes."""
    if status >= 500 and content_type == "text/html":  # a proxy's error page
        assert configured is not None
        assert status in configured.error_statuses
        return
    assert content_type == "application/json", (status, payload)
    body = orjson.loads(payload)
    if status >= 500:
        assert (v2, status, v2_error_code(body)) == (True, 521, 521), f"an accidental {status}"
        assert configured is not None
        assert configured.busy_rate
    elif v2 and status == 200:
        assert set(body) == {"data", "warnings", "errors"}
        assert body["errors"] == []
        assert isinstance(body["data"][0]["transferrable"], bool)
    elif v2:
        assert status in (400, 405)
        assert v2_error_code(body) in V2_CODES
    elif status == 200:
        item = body["response"]["validation_code"]["code"]["item_status"]
        assert (item["success"], item["code"]) in {("true", 200), ("false", 816)}
    else:
        assert status in (400, 405)
        assert v11_error_code(body) in V11_CODES


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    query=queries,
    body=bodies,
    v2_path=v2_paths,
    other=st.tuples(
        st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
        st.sampled_from([CODE_PATH, CHECK_PATH, "/v2/points/isTransferable"]),
    ),
    configured=faults,
)
async def test_any_request_gets_a_documented_answer_and_no_accidental_5xx(
    session: aiohttp.ClientSession,
    fake: FakeCapillary,
    query: dict[str, bytes],
    body: bytes,
    v2_path: str,
    other: tuple[str, str],
    configured: Faults | None,
) -> None:
    fake.set_faults(configured)
    # Each endpoint with its own method, then any method on any known path; every request
    # carries both the query and the body.
    for method, path in (("GET", CODE_PATH), ("POST", v2_path), other):
        answer = await send(session, fake.url + path, method, query, body)
        assert_documented(*answer, v2=path != CODE_PATH, configured=configured)


@settings(max_examples=200, deadline=None)
@given(text=number_text | st.text(max_size=12))
def test_int32_reads_text_as_ascii_digits_with_an_optional_minus_within_int32(text: str) -> None:
    # The rule written as a regular expression, apart from int32's own code.
    written = re.fullmatch(r"-?[0-9]+", text, flags=re.ASCII) is not None
    expected = int(text) if written and INT32_MIN <= int(text) <= INT32_MAX else None
    assert int32(text) == expected


# -- property: the same for the endpoints of the rest of both flows -----------------------------

REDEEMABLE_CODES = {400, 405, 885}
REDEEM_CODES = {400, 405, 885}
TRANSFER_CODES = {400, 405, 418, 422, 605, 807, 885, 3316, 8013, 8015}
ITEM_CODES = {800, 803, 808, 816}

redeem_item = around(
    redeem_body("919777785205", 10, "NS3U05")["root"]["redeem"][0],
    {
        "points_redeemed": number_values,
        "customer": st.fixed_dictionaries({}, optional={"mobile": json_values, "id": json_values})
        | json_values,
        "validation_code": json_values,
    },
)
redeem_bodies = st.one_of(
    redeem_item.map(lambda item: {"root": {"redeem": [item]}}),
    redeem_item.map(lambda item: {"root": {"redeem": item}}),
    st.lists(redeem_item, max_size=3).map(lambda items: {"root": {"redeem": items}}),
    json_values,
).map(lambda body: json.dumps(body).encode())
transfer_bodies = st.one_of(
    around(
        transfer_body(code="ABC123", notes="n"),
        {**body_values, "code": json_values, "notes": json_values},
    ).map(lambda body: json.dumps(body).encode()),
    st.binary(max_size=40),
)
redeemable_queries = st.tuples(
    around(
        {
            "mobile": b"919777785205",
            "points": b"10",
            "program_id": b"973",
            "issue_otp": b"true",
            "validation_code": b"NS3U05",
        },
        {
            "mobile": query_values,
            "points": query_values,
            "program_id": query_values,
            "issue_otp": st.sampled_from([b"TRUE", b"false", b"1"]) | query_values,
            "validation_code": query_values,
        },
    ),
    st.dictionaries(st.sampled_from(query_keys) | st.text(max_size=5), query_values, max_size=2),
).map(lambda parts: {**parts[1], **parts[0]})
flow_faults = st.sampled_from(
    [None, Faults(error_rate=0.5), Faults(busy_rate=0.5), Faults(drop_after_apply_rate=0.5)]
)


def assert_flow_documented(
    path: str, answer: tuple[int, str, bytes] | None, configured: Faults | None
) -> None:
    """A dropped connection or a 5xx only as the configured fault; otherwise the endpoint's
    own envelope, success shape and codes."""
    if answer is None:
        assert configured is not None
        assert configured.drop_after_apply_rate
        return
    status, content_type, payload = answer
    if status >= 500:
        assert_documented(status, content_type, payload, path == TRANSFER_PATH, configured)
        return
    assert content_type == "application/json", (status, payload)
    body = orjson.loads(payload)
    if path == TRANSFER_PATH:
        if status == 201:
            assert set(body) == {"data", "warnings", "errors"}
            assert body["data"][0]["pointsTransferred"] > 0
        else:
            assert status in (400, 405)
            assert v2_error_code(body) in TRANSFER_CODES
    elif status == 200:
        path_to_item = (
            ("points", "redeemable") if path == REDEEMABLE_PATH else ("responses", "points")
        )
        item = body["response"][path_to_item[0]][path_to_item[1]]
        assert item["item_status"]["code"] in ITEM_CODES
    else:
        assert status in (400, 405)
        codes = REDEEMABLE_CODES if path == REDEEMABLE_PATH else REDEEM_CODES
        assert v11_error_code(body) in codes


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    query=redeemable_queries,
    redeem=redeem_bodies,
    transfer=transfer_bodies,
    method=st.sampled_from(["GET", "POST", "PUT"]),
    configured=flow_faults,
)
async def test_the_flow_endpoints_answer_anything_in_their_documented_envelopes(
    session: aiohttp.ClientSession,
    fake: FakeCapillary,
    query: dict[str, bytes],
    redeem: bytes,
    transfer: bytes,
    method: str,
    configured: Faults | None,
) -> None:
    fake.set_faults(configured)
    for path, verb, body in (
        (REDEEMABLE_PATH, "GET", b""),
        (REDEEM_PATH, "POST", redeem),
        (TRANSFER_PATH, "POST", transfer),
        (REDEEM_PATH, method, redeem),
    ):
        try:
            answer = await send(session, fake.url + path, verb, query, body)
        except aiohttp.ClientConnectionError:
            answer = None
        assert_flow_documented(path, answer, configured)
