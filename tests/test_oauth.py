"""OAuth: one token per client, fetched once however many calls want it, renewed before it
expires, renewed once on a 401, and never shown anywhere."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import pytest
from multidict import CIMultiDict

from capillary_points_async import (
    ApiRequest,
    AuthenticationError,
    CapillaryClient,
    CustomerNotFoundError,
    Identifier,
    OAuth,
    RawResponse,
    RetryPolicy,
    TransferCheckRequest,
)

from ._clock import virtual_time
from ._samples import sample_bytes
from ._scripted import TC_PATH, Reply, ScriptedServer, v2_error

KEY, SECRET = "oauth-key-1234", "oauth-secret-5678"
TOKEN_PATH = "/v3/oauth/token/generate"
OK_TC = sample_bytes("istransferrable_page_200.json")


def token_reply(token: str, ttl: float = 300) -> Reply:
    body = json.dumps({"data": {"accessToken": token, "ttlSeconds": ttl}, "errors": None})
    return Reply(body=body)


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with ScriptedServer() as scripted:
        scripted.defaults[TOKEN_PATH] = token_reply("token-A")
        yield scripted


def client_for(server: ScriptedServer, **kwargs: Any) -> CapillaryClient:
    kwargs.setdefault("rate_limit", None)
    kwargs.setdefault("retry", RetryPolicy(max_attempts=2, wait_initial=0.001, wait_max=0.001))
    return CapillaryClient(server.url, OAuth(KEY, SECRET), **kwargs)


async def check(client: CapillaryClient) -> Any:
    return await client.points.is_transferrable(
        from_customer=Identifier.mobile("9777785206"),
        to_customer=Identifier.mobile("9777785207"),
        points=1,
    )


def checks(count: int) -> list[TransferCheckRequest]:
    return [
        TransferCheckRequest(
            from_customer=Identifier.mobile(f"9{i:09d}"),
            to_customer=Identifier.mobile("9777785207"),
            points=1,
        )
        for i in range(count)
    ]


async def test_the_token_is_requested_with_key_and_secret_and_sent_in_its_header(
    server: ScriptedServer,
) -> None:
    async with client_for(server) as client:
        await check(client)
    token_request, call = server.seen
    assert (token_request.method, token_request.path) == ("POST", TOKEN_PATH)
    assert json.loads(token_request.body) == {"key": KEY, "secret": SECRET}
    assert "Authorization" not in token_request.headers
    assert call.headers["X-CAP-API-OAUTH-TOKEN"] == "token-A"
    assert "Authorization" not in call.headers


async def test_a_thousand_concurrent_calls_make_one_token_request(server: ScriptedServer) -> None:
    async with client_for(server, max_connections=100) as client:
        outcomes = [
            o async for o in client.points.is_transferrable_many(checks(1000), concurrency=1000)
        ]
    assert all(o.ok for o in outcomes)
    assert len(server.arrivals(TOKEN_PATH)) == 1
    assert len(server.arrivals(TC_PATH)) == 1000


async def test_a_401_renews_the_token_once_and_sends_once_more(server: ScriptedServer) -> None:
    server.script(TOKEN_PATH, token_reply("token-A"), token_reply("token-B"))
    server.script(TC_PATH, v2_error(401, "token expired", status=401))
    async with client_for(server) as client:
        assert (await check(client)).transferrable
    calls = [s for s in server.seen if s.path == TC_PATH]
    assert [s.headers["X-CAP-API-OAUTH-TOKEN"] for s in calls] == ["token-A", "token-B"]
    assert len(server.arrivals(TOKEN_PATH)) == 2


async def test_a_second_401_is_an_authentication_error(server: ScriptedServer) -> None:
    unauthorized = v2_error(401, "Unauthorized", status=401)
    server.script(TC_PATH, unauthorized, unauthorized, unauthorized)
    async with client_for(server) as client:
        with pytest.raises(AuthenticationError):
            await check(client)
    assert len(server.arrivals(TC_PATH)) == 2  # once, and once more with a new token
    assert len(server.arrivals(TOKEN_PATH)) == 2


async def test_a_redeem_answered_401_is_sent_again_after_the_renewal(
    server: ScriptedServer,
) -> None:
    # A 401 is answered before anything is applied: the one re-send a points-moving call gets.
    server.defaults["/v1.1/points/redeem"] = Reply(body=sample_bytes("redeem_openapi_200.json"))
    server.script("/v1.1/points/redeem", Reply(status=401, body=""))
    async with client_for(server) as client:
        redemption = await client.points.redeem(
            Identifier.mobile("919777785205"), points=1, validation_code="NS3U05"
        )
    assert redemption.redemption_id == "7t4y2a"
    assert len(server.arrivals("/v1.1/points/redeem")) == 2


@pytest.mark.parametrize(
    "reply",
    [
        Reply(
            status=401,
            body=json.dumps({"data": None, "errors": [{"code": 401, "message": "bad key"}]}),
        ),
        Reply(status=200, body=json.dumps({"data": {"ttlSeconds": 300}, "errors": None})),
        Reply(status=500, body="<html>oops</html>"),
    ],
    ids=["refused", "no-token", "server-error"],
)
async def test_a_failed_token_request_is_an_authentication_error_and_sends_nothing(
    server: ScriptedServer, reply: Reply, caplog: pytest.LogCaptureFixture
) -> None:
    server.script(TOKEN_PATH, reply)
    caplog.set_level(logging.DEBUG, logger="capillary_points_async")
    async with client_for(server) as client:
        with pytest.raises(AuthenticationError) as caught:
            await check(client)
        assert client.stats.errors == 1
    assert server.arrivals(TC_PATH) == []
    shown = " ".join([str(caught.value), repr(caught.value), caplog.text, repr(client)])
    assert KEY not in shown
    assert SECRET not in shown


async def test_no_key_secret_or_token_in_reprs_errors_or_logs(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.script(TC_PATH, v2_error(8015, "not found"))
    caplog.set_level(logging.DEBUG, logger="capillary_points_async")
    async with client_for(server) as client:
        with pytest.raises(CustomerNotFoundError) as caught:
            await check(client)
        await check(client)
        shown = " ".join(
            [repr(OAuth(KEY, SECRET)), str(OAuth(KEY, SECRET)), repr(client), str(caught.value)]
        )
    shown += caplog.text
    assert "token-A" not in shown
    assert KEY not in shown
    assert SECRET not in shown
    assert caplog.text  # DEBUG logging was on and said something


@pytest.mark.parametrize(("key", "secret"), [("", "s"), ("k", ""), (None, "s"), ("k", 5)])
def test_oauth_needs_a_key_and_a_secret(key: Any, secret: Any) -> None:
    with pytest.raises(ValueError, match="OAuth"):
        OAuth(key, secret)


# --------------------------------------------------------------------------- renewal in time


class TokenTransport:
    """Answers token requests with numbered tokens of ``ttl`` seconds and every other request
    with the isTransferrable sample, recording the token each call carried."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.issued = 0
        self.carried: deque[str] = deque()

    async def send(self, request: ApiRequest) -> RawResponse:
        if request.path == "v3/oauth/token/generate":
            self.issued += 1
            body = {"data": {"accessToken": f"t{self.issued}", "ttlSeconds": self.ttl}}
            return RawResponse(200, CIMultiDict(), json.dumps(body).encode())
        self.carried.append(dict(request.headers)["X-CAP-API-OAUTH-TOKEN"])
        return RawResponse(200, CIMultiDict(), OK_TC)

    async def aclose(self) -> None:
        pass


@virtual_time
async def test_the_token_is_renewed_before_its_ttl_runs_out() -> None:
    transport = TokenTransport(ttl=300)
    async with CapillaryClient(
        "http://127.0.0.1:9", OAuth(KEY, SECRET), transport=transport, rate_limit=None
    ) as client:
        await check(client)  # t=0: token 1
        await asyncio.sleep(260)
        await check(client)  # still token 1
        await asyncio.sleep(20)  # t=280: less than a tenth of its life left
        await check(client)
        await check(client)
    assert list(transport.carried) == ["t1", "t1", "t2", "t2"]
    assert transport.issued == 2
