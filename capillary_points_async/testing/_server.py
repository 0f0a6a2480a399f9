"""FakeCapillary: the sandbox's aiohttp server.

Every request goes through :meth:`FakeCapillary._dispatch` in the order a real deployment
would treat it: the gateway logs its arrival and may throttle it, the backend may be slow, a
proxy may drop the connection or answer with its own HTML page, then the application checks
the credentials and answers in its envelope.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import random
import socket
import struct
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType

import attrs
import orjson
from aiohttp import web

from ._envelopes import (
    JSON,
    html_error_page,
    transfer_check,
    v2_errors,
    v11_error,
    v11_status,
    v11_validation_code,
)
from ._faults import Fate, FaultKind, Faults, decide
from ._parsing import Rejected, parse_transfer_check, parse_validation_code, reject
from ._state import SandboxCustomer, SandboxState
from ._traffic import (
    IS_TRANSFERRABLE,
    VALIDATION_CODE,
    RateLimitRule,
    RateLimitValue,
    SlidingWindow,
    Stats,
    per_endpoint,
)

__all__ = ["FakeCapillary"]

_NO_FATE = Fate()
_BUSY_MESSAGE = "Multiple actions are running for the same customer. Please try after some time"


@attrs.frozen
class _Endpoint:
    key: str
    v2: bool
    handle: Callable[[web.Request], Awaitable[JSON]]

    @property
    def method(self) -> str:
        return "POST" if self.v2 else "GET"

    def error(self, code: int, message: str, *, gateway: bool = False) -> JSON:
        return v2_errors(code, message, gateway=gateway) if self.v2 else v11_error(code, message)

    @property
    def throttled_code(self) -> int:
        # v1.1 has its own code for an exceeded quota; v2 repeats the HTTP status.
        return 429 if self.v2 else 517


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


def _basic_authorization(username: str, password: str) -> bytes:
    """The ``Authorization`` value Capillary expects: the password travels as its MD5 hex."""
    digest = hashlib.md5(password.encode(), usedforsecurity=False).hexdigest()
    return b"Basic " + base64.b64encode(f"{username}:{digest}".encode())


class FakeCapillary:
    """A local Capillary points API, for tests and benchmarks: a real HTTP server on loopback.

    It serves ``GET /v1.1/points/validationcode`` and ``POST /v2/points/isTransferrable``
    (also spelled ``isTransferable``) with the documented envelopes, codes and statuses
    (another method on those paths gets 405 with ``Allow``, another path 404), checks Basic
    credentials, rate-limits like a gateway, and injects faults on demand::

        async with FakeCapillary(customers=100, seed=7) as fake:
            async with CapillaryClient(fake.url, BasicAuth("sandbox", "sandbox")) as client:
                ...
            fake.state.otp_for("9777785206")   # the code "sent by SMS"
            fake.stats.by_status()             # Counter({200: ...})

    Args:
        host: interface to listen on; loopback by default.
        port: port to listen on; 0 picks a free one (read :attr:`url`).
        username: the till code clients must send.
        password: the plain password; clients send its MD5 hex digest. It is kept only as
            the expected header and never shown in a repr.
        seed: makes generated customers, validation codes, request ids and faults
            reproducible.
        customers: how many customers to generate besides the documentation's ones
            (identifier scheme: :func:`generate_customers`).
        otp_validity: seconds a validation code stays valid.
        rate_limits: ``RateLimitRule`` or ``(limit, per)`` for every endpoint, or a mapping
            from endpoint key (``"*"`` for the rest) to one. None: no limit.
        faults: :class:`Faults` for every endpoint, or a mapping like ``rate_limits``.
        clock: the time source of rate windows, validation-code validity and arrival times;
            the running loop's ``time()`` by default, so that ``looptime`` applies. Tests can
            pass a callable they advance themselves.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "sandbox",
        password: str = "sandbox",
        seed: int = 0,
        customers: int = 0,
        otp_validity: float = 900.0,
        rate_limits: RateLimitValue | Mapping[str, RateLimitValue] | None = None,
        faults: Faults | Mapping[str, Faults] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.host, self.port, self.seed, self.username = host, port, seed, username
        self._authorization = _basic_authorization(username, password)
        self._clock = clock or _loop_time
        #: Customers, programs and issued validation codes.
        self.state = SandboxState(
            clock=self.now, seed=seed, customers=customers, otp_validity=otp_validity
        )
        #: Requests, responses and arrival times per endpoint key.
        self.stats = Stats()
        #: Loop time at which the server started; ``Faults.throttle_during`` counts from it.
        self.started_at = 0.0
        self._request_ids = random.Random(f"{seed}/request-ids")
        self._windows: dict[str, SlidingWindow] = {}
        self._faults: dict[str, Faults] = {}
        self._faulted: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._endpoints = {
            "/v1.1/points/validationcode": _Endpoint(VALIDATION_CODE, False, self._validation_code),
            "/v2/points/isTransferrable": _Endpoint(IS_TRANSFERRABLE, True, self._is_transferrable),
            "/v2/points/isTransferable": _Endpoint(IS_TRANSFERRABLE, True, self._is_transferrable),
        }
        self.set_rate_limits(rate_limits)
        self.set_faults(faults)

    def __repr__(self) -> str:
        return f"FakeCapillary(url={self._url!r}, username={self.username!r}, seed={self.seed!r})"

    # -- life cycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321``; pass it as the client's region."""
        if self._url is None:
            raise RuntimeError("FakeCapillary is not started; use 'async with' or start()")
        return self._url

    def now(self) -> float:
        """The sandbox's clock (the running loop's time unless a clock was given)."""
        return self._clock()

    async def start(self) -> FakeCapillary:
        """Start listening; returns the sandbox (``fake = await FakeCapillary().start()``)."""
        if self._runner is not None:
            raise RuntimeError("FakeCapillary is already started")
        app = web.Application()
        for path, endpoint in self._endpoints.items():
            app.router.add_route(endpoint.method, path, self._handler(endpoint))
            # Tried after the declared method's route: any other method on a known path.
            app.router.add_route("*", path, self._method_not_allowed(endpoint))
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        # handler_cancellation: a client that gives up on a slow answer cancels its handler,
        # so close() never waits for latency that nobody is waiting for.
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        host, port = runner.addresses[0][:2]
        self._url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        self._runner = runner
        self.started_at = self.now()
        return self

    async def close(self) -> None:
        """Stop listening and drop open connections. Safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeCapillary:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- configuration at run time -----------------------------------------------------------

    @property
    def faults(self) -> Mapping[str, Faults]:
        """The faults in force, per endpoint key. Assign to replace them (see set_faults)."""
        return dict(self._faults)

    @faults.setter
    def faults(self, faults: Faults | Mapping[str, Faults] | None) -> None:
        self.set_faults(faults)

    def set_faults(self, faults: Faults | Mapping[str, Faults] | None) -> None:
        """Replace the faults; ``Faults.for_requests`` counts again from here. None heals."""
        self._faults = per_endpoint(faults, Faults.coerce)
        self._faulted.clear()

    def heal(self) -> None:
        """Remove every fault."""
        self.set_faults(None)

    def set_rate_limits(
        self, rate_limits: RateLimitValue | Mapping[str, RateLimitValue] | None
    ) -> None:
        """Replace the rate limits; the windows start empty. None removes them."""
        rules = per_endpoint(rate_limits, RateLimitRule.coerce)
        self._windows = {key: SlidingWindow(rule) for key, rule in rules.items()}

    def arrivals(self, endpoint: str | None = None) -> list[float]:
        """When requests arrived (the sandbox's clock), for one endpoint key or all, including
        the ones answered 429 or faulted: what the client really sent, as the server saw it."""
        return self.stats.arrivals(endpoint)

    # -- the request pipeline ----------------------------------------------------------------

    def _handler(
        self, endpoint: _Endpoint
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._dispatch(request, endpoint)

        return handle

    async def _dispatch(self, request: web.Request, endpoint: _Endpoint) -> web.StreamResponse:
        now = self.now()
        index = self.stats.record_arrival(endpoint.key, now)
        fate = self._fate(endpoint.key, index, now)
        window = self._windows.get(endpoint.key)
        retry_after = fate.retry_after if fate.fault is FaultKind.THROTTLE else None
        if retry_after is None and window is not None:
            retry_after = window.admit(now)
        if retry_after is not None:
            body = endpoint.error(endpoint.throttled_code, "Rate limit exceeded", gateway=True)
            return self._json(endpoint.key, 429, body, {"Retry-After": str(retry_after)})
        if fate.latency:
            await asyncio.sleep(fate.latency)
        if fate.fault is FaultKind.RESET:
            return self._reset(request, endpoint.key)
        if fate.fault is FaultKind.ERROR_PAGE:
            page = html_error_page(fate.status).encode()
            return self._respond(endpoint.key, fate.status, page, content_type="text/html")
        if not self._authorized(request):
            return self._json(endpoint.key, 401, endpoint.error(401, "Unauthorized", gateway=True))
        if fate.fault is FaultKind.BUSY and endpoint.v2:
            return self._json(endpoint.key, 521, endpoint.error(521, _BUSY_MESSAGE))
        try:
            status, body = 200, await endpoint.handle(request)
        except Rejected as rejected:
            status, body = rejected.status, endpoint.error(rejected.code, rejected.message)
        payload = orjson.dumps(body)
        if fate.fault is FaultKind.TRUNCATE:
            payload = payload[: len(payload) // 2]
        return self._respond(endpoint.key, status, payload)

    def _fate(self, key: str, index: int, now: float) -> Fate:
        faults = self._faults.get(key)
        if faults is None:
            return _NO_FATE
        self._faulted[key] += 1
        if faults.for_requests is not None and self._faulted[key] > faults.for_requests:
            return _NO_FATE
        return decide(faults, random.Random(f"{self.seed}/{key}/{index}"), now - self.started_at)

    def _authorized(self, request: web.Request) -> bool:
        sent = request.headers.get("Authorization", "").encode("utf-8", "replace")
        return hmac.compare_digest(sent, self._authorization)

    def _reset(self, request: web.Request, key: str) -> web.StreamResponse:
        self.stats.resets[key] += 1
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Linger 0: closing sends RST, as a crashed proxy would, rather than a polite FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        # aiohttp's attempt to write this to the dead transport is what ends the request; it
        # treats that as the client having gone away and logs nothing.
        return web.Response()

    def _json(
        self, key: str, status: int, body: JSON, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        return self._respond(key, status, orjson.dumps(body), headers=headers)

    def _respond(
        self,
        key: str | None,
        status: int,
        payload: bytes,
        *,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        if key is not None:
            self.stats.responses[(key, status)] += 1
        request_id = str(uuid.UUID(int=self._request_ids.getrandbits(128), version=4))
        response = web.Response(
            status=status, body=payload, content_type=content_type, headers=headers
        )
        response.headers["X-Cap-Requestid"] = request_id
        return response

    def _method_not_allowed(
        self, endpoint: _Endpoint
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        # Like 404, the router's answer: it reaches neither the gateway's quota nor the stats.
        async def handle(request: web.Request) -> web.StreamResponse:
            message = f"Method not allowed: {request.method} {request.path}"
            body = endpoint.error(405, message, gateway=True)
            return self._respond(None, 405, orjson.dumps(body), headers={"Allow": endpoint.method})

        return handle

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        body = v2_errors(404, f"No such resource: {request.method} {request.path}", gateway=True)
        return self._respond(None, 404, orjson.dumps(body))

    # -- the two endpoints -------------------------------------------------------------------

    async def _validation_code(self, request: web.Request) -> JSON:
        query = parse_validation_code(request.query)
        customer = self.state.find(query.kind, query.value)
        if customer is None:
            # Echo what was asked for, as the redeem endpoint's documented 816 answer does.
            asked = request.query
            return v11_validation_code(
                mobile=asked.get("mobile", ""),
                email=asked.get("email", ""),
                external_id=asked.get("external_id", ""),
                points=query.points,
                item_status=v11_status(False, 816, "Customer not found for organization"),
            )
        self.state.issue_otp(customer)
        return v11_validation_code(
            mobile=customer.mobile or "",
            email=customer.email or "",
            external_id=customer.external_id or "",
            points=query.points,
            item_status=v11_status(True, 200, "Validation Code Issued by SMS"),
        )

    async def _is_transferrable(self, request: web.Request) -> JSON:
        body = parse_transfer_check(request.content_type, await request.read())
        program = (
            self.state.default_program()
            if body.program_id is None
            else self.state.programs.get(body.program_id)
        )
        if program is None:
            reject(400, 885, "Invalid program id passed")
        if body.group and not program.group:
            reject(400, 3316, "Group redemption action executed for non-group redemption payload.")
        source, target = self._customer(body.source), self._customer(body.target)
        if source.user_id == target.user_id:
            reject(400, 418, "From and to customer are the same")
        transferrable = source.can_transfer(body.points)
        if transferrable and body.issue_otp:
            self.state.issue_otp(source)
        return transfer_check(body.points, source, target, transferrable)

    def _customer(self, identifier: tuple[str, str]) -> SandboxCustomer:
        customer = self.state.find(*identifier)
        if customer is None:
            reject(400, 8015, "Customer not found for the given identifiers")
        return customer
