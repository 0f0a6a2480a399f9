"""The headers each request carries on the wire, read from the raw header list (a dict of
them would hide a header sent twice): each of ours exactly once, Content-Type only with a
body, and ours over a caller's session defaults."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from capillary_points_async import BasicAuth, CapillaryClient, Identifier

from ._scripted import sample

RawHeaders = list[tuple[str, str]]


@pytest.fixture
async def server() -> AsyncIterator[tuple[TestServer, list[RawHeaders]]]:
    seen: list[RawHeaders] = []
    bodies = {
        "/v1.1/points/validationcode": sample("validationcode_page_200.json"),
        "/v2/points/isTransferrable": sample("istransferrable_page_200.json"),
    }

    async def answer(request: web.Request) -> web.Response:
        seen.append([(k.decode().lower(), v.decode()) for k, v in request.raw_headers])
        return web.Response(body=bodies[request.path], content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1.1/points/validationcode", answer)
    app.router.add_post("/v2/points/isTransferrable", answer)
    async with TestServer(app) as test_server:
        yield test_server, seen


async def both_calls(client: CapillaryClient) -> None:
    await client.points.issue_validation_code(Identifier.mobile("918000000000"), points=10)
    await client.points.is_transferrable(
        from_customer=Identifier.mobile("918000000000"),
        to_customer=Identifier.mobile("918000000001"),
        points=1,
    )


def counts(headers: RawHeaders) -> Counter[str]:
    return Counter(name for name, _ in headers)


OURS = ("authorization", "accept", "user-agent")


@pytest.mark.asyncio
async def test_each_of_our_headers_goes_once_and_a_get_has_no_content_type(
    server: tuple[TestServer, list[RawHeaders]],
) -> None:
    test_server, seen = server
    auth = BasicAuth("till", "secret")
    async with CapillaryClient(str(test_server.make_url("")), auth, rate_limit=None) as client:
        await both_calls(client)
    get, post = seen
    for headers in (get, post):
        assert [counts(headers)[name] for name in OURS] == [1, 1, 1], headers
        assert dict(headers)["authorization"] == auth.header
    assert "content-type" not in counts(get)
    assert counts(post)["content-type"] == 1
    assert dict(post)["content-type"] == "application/json"


@pytest.mark.asyncio
async def test_ours_replace_a_callers_session_defaults_and_theirs_stay(
    server: tuple[TestServer, list[RawHeaders]],
) -> None:
    test_server, seen = server
    defaults = {"Accept": "text/html", "User-Agent": "their-app/1", "X-Trace": "t-1"}
    async with (
        aiohttp.ClientSession(headers=defaults) as session,
        CapillaryClient(
            str(test_server.make_url("")),
            BasicAuth("till", "secret"),
            rate_limit=None,
            session=session,
        ) as client,
    ):
        await both_calls(client)
    for headers in seen:
        assert [counts(headers)[name] for name in (*OURS, "x-trace")] == [1, 1, 1, 1], headers
        assert dict(headers)["accept"] == "application/json"
        assert dict(headers)["user-agent"].startswith("capillary-points-async/")
