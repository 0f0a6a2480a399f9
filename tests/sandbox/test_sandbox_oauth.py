"""OAuth in the sandbox: the token endpoint, tokens on the points endpoints, their lifetime,
and the library's client against it (issue 12, item 4)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from capillary_points_async import (
    AuthenticationError,
    CapillaryClient,
    Identifier,
    OAuth,
    ValidationCodeRequest,
)
from capillary_points_async.testing import VALIDATION_CODE, FakeCapillary

from .._clock import virtual_time
from .helpers import CODE_PATH, Clock, basic

KEY, SECRET = "sandbox-key", "sandbox-secret"
TOKEN_URL = "/v3/oauth/token/generate"
TOKEN_HEADER = "X-CAP-API-OAUTH-TOKEN"


async def token_request(
    session: aiohttp.ClientSession, fake: FakeCapillary, body: Any
) -> tuple[int, Any]:
    async with session.post(fake.url + TOKEN_URL, json=body) as response:
        return response.status, await response.json()


async def code_status(session: aiohttp.ClientSession, fake: FakeCapillary, **headers: str) -> int:
    params = {"mobile": "919777785205", "format": "json"}
    async with session.get(fake.url + CODE_PATH, params=params, headers=headers) as response:
        return response.status


@pytest.fixture
async def oauth_fake(clock: Clock) -> AsyncIterator[FakeCapillary]:
    async with FakeCapillary(clock=clock, oauth={KEY: SECRET}, ttl_seconds=120) as fake:
        yield fake


async def test_a_known_key_and_secret_get_a_token_with_its_lifetime(
    oauth_fake: FakeCapillary,
) -> None:
    async with aiohttp.ClientSession() as anonymous:
        status, body = await token_request(anonymous, oauth_fake, {"key": KEY, "secret": SECRET})
        again = (await token_request(anonymous, oauth_fake, {"key": KEY, "secret": SECRET}))[1]
    assert status == 200
    assert set(body) == {"data", "errors"}
    assert body["errors"] is None
    assert body["data"]["ttlSeconds"] == 120
    assert isinstance(body["data"]["accessToken"], str)
    assert body["data"]["accessToken"] != again["data"]["accessToken"]
    assert oauth_fake.stats.token_requests == 2
    # Not a points endpoint: no arrival, no quota.
    assert oauth_fake.stats.requests == {}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"key": KEY, "secret": "wrong"}, 401),
        ({"key": "other", "secret": SECRET}, 401),
        ({"key": KEY}, 400),
        ({"key": KEY, "secret": 5}, 400),
        ([KEY, SECRET], 400),
    ],
)
async def test_wrong_or_malformed_token_requests_are_refused_in_the_token_envelope(
    oauth_fake: FakeCapillary, body: Any, status: int
) -> None:
    async with aiohttp.ClientSession() as anonymous:
        answer = await token_request(anonymous, oauth_fake, body)
    assert answer[0] == status
    assert answer[1]["data"] is None
    [error] = answer[1]["errors"]
    assert error["code"] == status
    assert SECRET not in error["message"]
    assert oauth_fake.stats.token_requests == 1


async def test_without_oauth_clients_every_token_request_is_refused(fake: FakeCapillary) -> None:
    async with aiohttp.ClientSession() as anonymous:
        status, body = await token_request(anonymous, fake, {"key": KEY, "secret": SECRET})
        async with anonymous.get(fake.url + TOKEN_URL) as response:
            assert response.status == 405
            assert response.headers["Allow"] == "POST"
    assert (status, body["errors"][0]["code"]) == (401, 401)


async def test_a_live_token_opens_the_points_endpoints_until_it_expires(
    oauth_fake: FakeCapillary, clock: Clock
) -> None:
    async with aiohttp.ClientSession() as anonymous:
        token = (await token_request(anonymous, oauth_fake, {"key": KEY, "secret": SECRET}))[1]
        header = {TOKEN_HEADER: token["data"]["accessToken"]}
        assert await code_status(anonymous, oauth_fake, **header) == 200
        assert await code_status(anonymous, oauth_fake, **{TOKEN_HEADER: "made-up"}) == 401
        assert await code_status(anonymous, oauth_fake) == 401
        clock.advance(119.9)
        assert await code_status(anonymous, oauth_fake, **header) == 200
        clock.advance(0.1)  # 120 s after it was issued
        assert await code_status(anonymous, oauth_fake, **header) == 401
        # Basic credentials still work beside OAuth.
        assert await code_status(anonymous, oauth_fake, Authorization=basic()) == 200
    assert oauth_fake.stats.by_status(VALIDATION_CODE) == {200: 3, 401: 3}


@virtual_time
async def test_a_thousand_calls_through_the_client_make_one_token_request() -> None:
    requests = [ValidationCodeRequest(Identifier.mobile("919777785205"))] * 1000
    async with (
        FakeCapillary(oauth={KEY: SECRET}) as fake,
        CapillaryClient(fake.url, OAuth(KEY, SECRET), rate_limit=None) as client,
    ):
        outcomes = [o async for o in client.points.issue_validation_code_many(requests)]
    assert all(outcome.ok for outcome in outcomes)
    assert fake.stats.by_status(VALIDATION_CODE) == {200: 1000}
    assert fake.stats.token_requests == 1


@virtual_time
async def test_the_client_renews_its_token_before_the_sandbox_lets_it_expire() -> None:
    loop = asyncio.get_running_loop()
    async with (
        FakeCapillary(oauth={KEY: SECRET}, ttl_seconds=60) as fake,
        CapillaryClient(fake.url, OAuth(KEY, SECRET), rate_limit=None) as client,
    ):
        start = loop.time()
        while loop.time() - start < 600:
            await client.points.issue_validation_code(Identifier.mobile("919777785205"))
            await asyncio.sleep(5)
    assert fake.stats.by_status(VALIDATION_CODE) == {200: 120}
    assert fake.stats.token_requests == 11  # one per 54 s (0.9 of the lifetime) of 600 s


async def test_a_token_the_sandbox_expired_early_gets_a_401_then_the_client_renews(
    oauth_fake: FakeCapillary, clock: Clock
) -> None:
    mobile = Identifier.mobile("919777785205")
    async with CapillaryClient(oauth_fake.url, OAuth(KEY, SECRET), rate_limit=None) as client:
        await client.points.issue_validation_code(mobile)
        # The sandbox's clock runs ahead of the client's: the client still trusts its token.
        clock.advance(121)
        await client.points.issue_validation_code(mobile)
    assert oauth_fake.stats.by_status(VALIDATION_CODE) == {200: 2, 401: 1}
    assert oauth_fake.stats.token_requests == 2


async def test_a_wrong_secret_fails_the_client_call_and_sends_no_points_request(
    oauth_fake: FakeCapillary,
) -> None:
    async with CapillaryClient(oauth_fake.url, OAuth(KEY, "wrong"), rate_limit=None) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.points.issue_validation_code(Identifier.mobile("919777785205"))
    assert caught.value.status == 401
    assert oauth_fake.stats.requests == {}


async def test_no_secret_or_token_in_the_sandboxs_repr(oauth_fake: FakeCapillary) -> None:
    async with aiohttp.ClientSession() as anonymous:
        token = (await token_request(anonymous, oauth_fake, {"key": KEY, "secret": SECRET}))[1]
    text = repr(oauth_fake) + repr(oauth_fake.stats) + repr(oauth_fake.state)
    assert SECRET not in text
    assert token["data"]["accessToken"] not in text


@pytest.mark.parametrize(
    "kwargs",
    [
        {"oauth": [("key", "secret")]},
        {"oauth": {"key": ""}},
        {"oauth": {"": "secret"}},
        {"oauth": {"key": 5}},
        {"ttl_seconds": 0},
        {"ttl_seconds": -1.0},
        {"ttl_seconds": float("inf")},
        {"ttl_seconds": True},
        {"ttl_seconds": "300"},
    ],
)
def test_bad_oauth_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError), match="must"):
        FakeCapillary(**kwargs)
