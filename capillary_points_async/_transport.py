"""The I/O seam: a transport sends one :class:`ApiRequest` and hands back the raw response.

:class:`AiohttpTransport` is the only code in the library that touches aiohttp's client. Tests
and other runtimes plug in anything with the same two coroutines (httpx's transport habit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import aiohttp
from yarl import URL

from ._converter import builder
from ._protocol import REQUEST_ID_HEADER, ApiRequest, RawResponse
from .errors import ResponseDecodeError, TransportError

__all__ = ["AiohttpTransport", "Transport"]

_raw_response = builder(RawResponse)  # RawResponse(...), for half the instructions


@runtime_checkable
class Transport(Protocol):
    """Sends requests. Raises :class:`TransportError` when no complete response came back."""

    async def send(self, request: ApiRequest) -> RawResponse:
        """Send ``request`` once and return the whole response, whatever its status."""

    async def aclose(self) -> None:
        """Release connections. The client calls it once, on close."""


class AiohttpTransport:
    """Sends requests through one :class:`aiohttp.ClientSession`.

    Args:
        base_url: scheme and host (and an optional path prefix) of the Capillary cluster.
        headers: sent with every request (authorization, accept, user agent).
        timeout: seconds one attempt may take, end to end (aiohttp ``ClientTimeout.total``).
        max_connections: the connection pool's bound, so a large fan-out queues in the pool
            instead of opening thousands of sockets.
        session: a caller-owned session to use instead of creating one; it is not closed here.
        max_response_bytes: the most one response body may occupy, decompressed; past it the
            body is not read further and :class:`ResponseDecodeError` is raised, so an endless
            or huge answer (a broken proxy, a wrong host) costs bounded memory.

    Must be created inside the running event loop, as aiohttp sessions are.
    """

    __slots__ = (
        "_headers",
        "_json_headers",
        "_max_bytes",
        "_owns_session",
        "_root",
        "_session",
        "_timeout",
        "_urls",
    )

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        timeout: float,
        max_connections: int,
        session: aiohttp.ClientSession | None = None,
        max_response_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self._root = base_url.rstrip("/")
        # URLs are parsed once per path, not once per request.
        self._urls: dict[str, URL] = {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_bytes = max_response_bytes
        self._owns_session = session is None
        if session is None:
            # Our headers are the session's defaults: aiohttp copies those in one step, where
            # it merges a request's own header by header in Python, 1% of a send (callgrind).
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=max_connections),
                timeout=self._timeout,
                headers=headers,
            )
            headers = {}
        self._session = session
        # Sent with each request: ours on a caller's session, whose defaults are its own.
        self._headers = dict(headers)
        self._json_headers = {**self._headers, "Content-Type": "application/json"}

    async def send(self, request: ApiRequest) -> RawResponse:
        """Send ``request`` once and return the whole response, whatever its status; a
        failure to connect, a reset or a timeout is a :class:`TransportError`
        (``connect_failed`` when no connection was made)."""
        url = self._urls.get(request.path)
        if url is None:
            url = self._urls[request.path] = URL(f"{self._root}/{request.path}")
        try:
            async with self._session.request(
                request.method,
                url,
                params=request.params or None,
                data=request.body,
                headers=self._headers_for(request),
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                return _raw_response(response.status, response.headers, await self._read(response))
        except asyncio.TimeoutError:
            raise TransportError(
                f"{request.method} {request.path} timed out after {self._timeout.total:g}s",
                method=request.method,
                path=request.path,
            ) from None
        except aiohttp.ClientError as exc:
            # str(exc) of aiohttp's errors names host and reason, never request headers.
            raise TransportError(
                f"{request.method} {request.path} failed: {type(exc).__name__}: {exc}",
                method=request.method,
                path=request.path,
                # Refused, DNS or TLS: no connection, so nothing was written to the server.
                connect_failed=isinstance(exc, aiohttp.ClientConnectorError),
            ) from exc

    def _headers_for(self, request: ApiRequest) -> dict[str, str]:
        headers = self._json_headers if request.body is not None else self._headers
        return {**headers, **dict(request.headers)} if request.headers else headers

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """The whole body, read chunk by chunk so that reading stops at ``max_response_bytes``
        (a Content-Length over it is refused unread; a gzip body is counted decompressed).
        Leaving a body unread makes aiohttp close the connection rather than reuse it."""
        limit = self._max_bytes
        length = response.content_length
        if length is not None and length > limit:
            raise _too_large(response, limit, f"Content-Length {length}")
        chunks: list[bytes] = []
        size = 0
        content = response.content
        # readany() itself, not iter_any(): the iterator's extra coroutine per chunk cost 2% of
        # a send's instructions (callgrind). Both return what has arrived, and b"" at the end.
        while chunk := await content.readany():
            size += len(chunk)
            if size > limit:
                raise _too_large(response, limit, f"{size} bytes read")
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        """Close the session if this transport made it; a caller's session stays open."""
        if self._owns_session:
            await self._session.close()


def _too_large(response: aiohttp.ClientResponse, limit: int, seen: str) -> ResponseDecodeError:
    return ResponseDecodeError(
        f"{response.method} {response.url.path} answer (HTTP {response.status}, {seen}) is "
        f"larger than max_response_bytes={limit}; the rest was not read",
        status=response.status,
        request_id=response.headers.get(REQUEST_ID_HEADER),
    )
