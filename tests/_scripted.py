"""A real local HTTP server whose answers a test scripts, for the client's wire behaviour.

Each endpoint path answers from its queue of :class:`Reply`, then from its default. Every
request is recorded with its arrival time, method, query, headers and body.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from aiohttp import web
from aiohttp.test_utils import TestServer

SAMPLES = Path(__file__).parent / "samples"
VC_PATH = "/v1.1/points/validationcode"
TC_PATH = "/v2/points/isTransferrable"


@attrs.frozen
class Reply:
    status: int = 200
    body: bytes | str = b""
    headers: Mapping[str, str] = attrs.field(factory=dict)
    hang: bool = False  # never answer (until the server stops)
    reset: bool = False  # drop the connection without answering


@attrs.frozen
class Seen:
    time: float
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def ok_validation_code(request_id: str = "vc-1") -> Reply:
    return Reply(
        body=sample("validationcode_page_200.json"), headers={"X-Cap-Requestid": request_id}
    )


def ok_transfer_check(request_id: str = "tc-1") -> Reply:
    return Reply(
        body=sample("istransferrable_page_200.json"), headers={"X-Cap-Requestid": request_id}
    )


def v2_error(code: int, message: str, status: int = 400, **headers: str) -> Reply:
    import json

    body = json.dumps(
        {"warnings": [], "errors": [{"status": False, "code": code, "message": message}]}
    )
    return Reply(status=status, body=body, headers={"X-Cap-Requestid": f"err-{code}", **headers})


class ScriptedServer:
    def __init__(self) -> None:
        self.queues: dict[str, deque[Reply]] = defaultdict(deque)
        self.defaults: dict[str, Reply] = {
            VC_PATH: ok_validation_code(),
            TC_PATH: ok_transfer_check(),
        }
        self.seen: list[Seen] = []
        self._arrived = asyncio.Condition()
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(app, host="127.0.0.1")

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    def script(self, path: str, *replies: Reply) -> None:
        self.queues[path].extend(replies)

    async def wait_for_requests(self, count: int) -> None:
        """Return once ``count`` requests have arrived."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: len(self.seen) >= count)

    def arrivals(self, path: str | None = None) -> list[float]:
        return [s.time for s in self.seen if path is None or s.path == path]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        self.seen.append(
            Seen(
                time=loop.time(),
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=await request.read(),
            )
        )
        async with self._arrived:
            self._arrived.notify_all()
        queue = self.queues[request.path]
        reply = queue.popleft() if queue else self.defaults.get(request.path, Reply(status=404))
        if reply.hang:
            await self._stop.wait()
        if reply.reset:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        headers: dict[str, Any] = {"Content-Type": "application/json", **reply.headers}
        body = reply.body.encode() if isinstance(reply.body, str) else reply.body
        return web.Response(status=reply.status, body=body, headers=headers)

    async def __aenter__(self) -> ScriptedServer:
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await self.server.close()
