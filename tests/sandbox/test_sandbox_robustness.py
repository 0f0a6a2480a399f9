"""Requests nobody would send on purpose: the sandbox answers them in a documented envelope,
never with an accidental 500 (issue 10, item 9).

Regression tests for the faults third-party checkers (schemathesis, hypothesis-jsonschema)
found, then a property test that throws arbitrary queries and bodies at a real local server.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from capillary_points_async.testing import FakeCapillary

from .helpers import CHECK_PATH, CODE_PATH, Api, check_body

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
        async with session.request(method, fake.url + "/v2/points/transfer") as response:
            assert response.status == 404
            assert "Allow" not in response.headers
            assert v2_error_code(await response.json()) == 404
