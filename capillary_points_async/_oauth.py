"""OAuth for orgs that moved off Basic authentication (API-NOTES.md, "Authentication").

``POST v3/oauth/token/generate`` with ``{"key", "secret"}`` answers
``{"data": {"accessToken", "ttlSeconds"}, "errors": null}``; the token goes in the
``X-CAP-API-OAUTH-TOKEN`` header. There is no refresh token: a new one is generated before the
old one expires. One token serves every call of a client: concurrent calls that find it
missing or expiring wait on one shared request for a new one (1,000 calls at once make one
token request), and a 401 makes the client drop the token it sent and fetch a new one, once.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

import attrs
import orjson

from ._protocol import REQUEST_ID_HEADER, ApiRequest, RawResponse
from .errors import AuthenticationError, CapillaryError, InvalidRequestError

__all__ = ["TOKEN_HEADER", "TOKEN_PATH", "OAuth", "TokenCache"]

TOKEN_PATH: Final = "v3/oauth/token/generate"
TOKEN_HEADER: Final = "X-CAP-API-OAUTH-TOKEN"
# A token is renewed once this share of its lifetime has passed, so that a call never leaves
# with one that expires on the way (and a slow token request still finishes in time).
_RENEW_AFTER: Final = 0.9


class OAuth:
    """Capillary OAuth credentials: the API key and secret of an OAuth client.

    Pass it as ``auth=`` instead of :class:`BasicAuth`. Neither the key, the secret nor any
    token appears in ``repr``, ``str``, an error or a log line.
    """

    __slots__ = ("_key", "_secret")

    def __init__(self, key: str, secret: str) -> None:
        for name, value in (("key", key), ("secret", secret)):
            if not isinstance(value, str) or not value.strip():
                raise InvalidRequestError(f"OAuth {name} must be a non-empty string")
        self._key = key
        self._secret = secret

    def token_request(self) -> ApiRequest:
        """The token request. Its body holds the secret: never log it."""
        body = orjson.dumps({"key": self._key, "secret": self._secret})
        return ApiRequest("POST", TOKEN_PATH, TOKEN_PATH, body=body)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, OAuth) and other._key == self._key and other._secret == self._secret
        )

    def __hash__(self) -> int:
        return hash((self._key, self._secret))

    def __repr__(self) -> str:
        return "OAuth(key=<hidden>, secret=<hidden>)"


def decode_token(raw: RawResponse) -> tuple[str, float]:
    """The access token and its lifetime in seconds, or :class:`AuthenticationError`."""
    request_id = raw.headers.get(REQUEST_ID_HEADER)
    try:
        doc: Any = orjson.loads(raw.body)
    except orjson.JSONDecodeError:
        doc = None
    data = doc.get("data") if isinstance(doc, dict) else None
    token = data.get("accessToken") if isinstance(data, dict) else None
    ttl = data.get("ttlSeconds") if isinstance(data, dict) else None
    failures = doc.get("errors") if isinstance(doc, dict) else None
    if (
        200 <= raw.status < 300
        and not failures
        and isinstance(token, str)
        and token
        and isinstance(ttl, (int, float))
        and not isinstance(ttl, bool)
        and ttl > 0
    ):
        return token, float(ttl)
    first = failures[0] if isinstance(failures, list) and failures else None
    message = first.get("message") if isinstance(first, dict) else None
    code = first.get("code") if isinstance(first, dict) else None
    raise AuthenticationError(
        f"the OAuth token request failed: {message}"
        if isinstance(message, str) and message
        else f"the OAuth token request failed (HTTP {raw.status}, no usable token in the answer)",
        status=raw.status,
        code=code if isinstance(code, int) and not isinstance(code, bool) else raw.status,
        request_id=request_id,
    )


@attrs.define
class _Token:
    value: str
    renew_at: float  # loop time


class TokenCache:
    """The client's current token: fetched on first use, renewed before it expires, shared.

    ``send`` is the transport's ``send``; tokens are requested through it, outside the rate
    limiter (the token endpoint is not one of the points endpoints' quotas).
    """

    __slots__ = ("_auth", "_fetch", "_send", "_token", "requests")

    def __init__(self, auth: OAuth, send: Any) -> None:
        self._auth = auth
        self._send = send
        self._token: _Token | None = None
        self._fetch: asyncio.Task[_Token] | None = None
        #: Token requests sent so far.
        self.requests = 0

    async def authorize(self, request: ApiRequest) -> ApiRequest:
        """``request`` carrying a valid token in its headers."""
        token = self._token
        if token is None or asyncio.get_running_loop().time() >= token.renew_at:
            token = await self._renewed()
        return attrs.evolve(request, headers=((TOKEN_HEADER, token.value),))

    def expire(self, sent: ApiRequest) -> None:
        """Drop the token ``sent`` carried (the server answered 401), unless a newer one has
        replaced it already: concurrent 401s of one token make one new token request."""
        token = self._token
        if token is not None and (TOKEN_HEADER, token.value) in sent.headers:
            self._token = None

    async def _renewed(self) -> _Token:
        if self._fetch is None:
            self._fetch = asyncio.get_running_loop().create_task(self._request())
            # Read its outcome even when every waiter has gone, so that no failure goes
            # unretrieved.
            self._fetch.add_done_callback(lambda task: task.cancelled() or task.exception())
        fetch = self._fetch
        try:
            # Shielded: a caller that gives up does not cancel the request the others await.
            return await asyncio.shield(fetch)
        finally:
            if fetch.done() and self._fetch is fetch:
                self._fetch = None

    async def _request(self) -> _Token:
        self.requests += 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        raw = await self._send(self._auth.token_request())
        value, ttl = decode_token(raw)
        token = _Token(value, started + ttl * _RENEW_AFTER)
        self._token = token
        return token

    async def aclose(self) -> None:
        """Cancel a token request still running (the client is closing)."""
        fetch = self._fetch
        if fetch is not None and not fetch.done():
            fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError, CapillaryError):
                await fetch
