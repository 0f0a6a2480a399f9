"""FakeCapillary: the sandbox's aiohttp server.

Every request goes through :meth:`FakeCapillary._dispatch` in the order a real deployment
would treat it: the gateway logs its arrival and may throttle it, the backend may be slow, a
proxy may drop the connection or answer with its own HTML page, then the application checks
the credentials, carries the request out and answers in its envelope (or the connection
drops before the answer gets out).

The endpoints served, their methods and their other spellings are the library's own
declarations (``capillary_points_async._endpoints``), so that the sandbox and the client
cannot disagree about them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import math
import random
import socket
import struct
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from types import TracebackType

import attrs
import orjson
from aiohttp import web

from .. import _endpoints as declared
from .._oauth import TOKEN_HEADER, TOKEN_PATH
from .._protocol import V2Envelope
from ._envelopes import (
    JSON,
    echo,
    html_error_page,
    oauth_error,
    oauth_token,
    transfer_check,
    transfer_done,
    v2_errors,
    v11_error,
    v11_redeemable,
    v11_redemption,
    v11_status,
    v11_validation_code,
)
from ._faults import Fate, FaultKind, Faults, decide
from ._parsing import (
    Rejected,
    TransferBody,
    parse_redeem,
    parse_redeem_query,
    parse_redeemability,
    parse_token_request,
    parse_transfer,
    parse_validation_code,
    reject,
)
from ._state import Program, SandboxCustomer, SandboxState
from ._traffic import (
    IS_REDEEMABLE,
    IS_TRANSFERRABLE,
    REDEEM,
    TRANSFER,
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
_NOT_FOUND_816 = "Customer not found for organization"
_TOO_FEW_TO_REDEEM = (
    "Unable to redeem. The points you are trying to redeem is more than the available points"
)
_BACKLOG = 128  # aiohttp's TCPSite default

Handler = Callable[[web.Request], Awaitable[JSON]]


@attrs.frozen
class _Endpoint:
    key: str
    method: str
    v2: bool
    handle: Handler
    ok_status: int  # transfer answers 201

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


def _oauth_clients(oauth: object) -> dict[str, str]:
    if oauth is None:
        return {}
    if not isinstance(oauth, Mapping):
        raise TypeError("oauth must be a mapping from OAuth key to secret, or None")
    if not all(isinstance(v, str) and v for pair in oauth.items() for v in pair):
        raise ValueError("oauth keys and secrets must be non-empty strings")
    return dict(oauth)


def _outage_of(faults: Mapping[str, Faults]) -> tuple[float, float] | None:
    """The one outage window of the faults in force: an outage takes the whole host down."""
    windows = {f.outage_during for f in faults.values()}
    if len(faults) < len(declared.ENDPOINTS):
        windows.add(None)  # the endpoints without faults have no outage
    if len(windows) > 1:
        raise ValueError(
            "outage_during takes the whole sandbox down, so every endpoint must have the same "
            "one: give it in a single Faults, or under '*'"
        )
    return next(iter(windows), None)


class FakeCapillary:
    """A local Capillary points API, for tests and benchmarks: a real HTTP server on loopback.

    It serves every endpoint the client declares, with its declared method and its other
    spellings (``GET /v1.1/points/validationcode``, ``POST /v2/points/isTransferrable`` or
    ``isTransferable``, ``GET /v1.1/points/isredeemable``, ``POST /v1.1/points/redeem``,
    ``POST /v2/points/transfer``), with the documented envelopes, codes and statuses
    (another method on those paths gets 405 with ``Allow``, another path 404). It keeps
    state: a redemption takes points and uses up its validation code, a transfer moves
    points (and uses up its OTP). Codes go out "by SMS", so tests read them from the state:
    ``fake.state.otp_for(value)`` for a redemption's validation code (issued by
    ``validationcode``, or by ``isredeemable`` with ``issue_otp``), ``otp_for(value,
    scope="transfer")`` for a transfer's OTP (``isTransferrable`` with ``issueOtp``). It
    checks Basic credentials, serves OAuth tokens when given OAuth clients (counted in
    ``fake.stats.token_requests``), rate-limits like a gateway, and injects faults on
    demand::

        async with FakeCapillary(customers=100, seed=7, oauth={"key": "secret"}) as fake:
            async with CapillaryClient(fake.url, BasicAuth("sandbox", "sandbox")) as client:
                await client.points.issue_validation_code(Identifier.mobile("9777785206"))
                code = fake.state.otp_for("9777785206")   # the code "sent by SMS"
                await client.points.redeem(Identifier.mobile("9777785206"), points=10,
                                           validation_code=code)
            fake.state.find("mobile", "9777785206").transaction_points   # 490.0
            fake.stats.by_status()             # Counter({200: 2})

    Args:
        host: interface to listen on; loopback by default.
        port: port to listen on; 0 picks a free one (read :attr:`url`).
        username: the till code clients must send.
        password: the plain password; clients send its MD5 hex digest. It is kept only as
            the expected header and never shown in a repr.
        seed: makes generated customers, validation codes, request ids, OAuth tokens and
            faults reproducible.
        customers: how many customers to generate besides the documentation's ones
            (identifier scheme: :func:`generate_customers`).
        otp_validity: seconds a validation code (or transfer OTP) stays valid.
        rate_limits: ``RateLimitRule`` or ``(limit, per)`` for every endpoint, or a mapping
            from endpoint key (``"*"`` for the rest) to one. None: no limit.
        faults: :class:`Faults` for every endpoint, or a mapping like ``rate_limits``.
        clock: the time source of rate windows, validation-code validity, token lifetimes
            and arrival times; the running loop's ``time()`` by default, so that ``looptime``
            applies. Tests can pass a callable they advance themselves.
        oauth: OAuth clients, ``{key: secret}``. With them, ``POST /v3/oauth/token/generate``
            hands out tokens, and the points endpoints accept a live token in
            ``X-CAP-API-OAUTH-TOKEN`` (an expired one gets 401) besides Basic credentials.
            Without them every token request is refused (401). Secrets and tokens are never
            shown in a repr.
        ttl_seconds: the lifetime of a token, in seconds of ``clock``.
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
        oauth: Mapping[str, str] | None = None,
        ttl_seconds: float = 300.0,
    ) -> None:
        if isinstance(ttl_seconds, bool) or not (
            isinstance(ttl_seconds, (int, float)) and 0 < ttl_seconds < math.inf
        ):
            raise ValueError(f"ttl_seconds must be a positive number, got {ttl_seconds!r}")
        self.host, self.port, self.seed, self.username = host, port, seed, username
        self.ttl_seconds = ttl_seconds
        self._authorization = _basic_authorization(username, password)
        self._oauth = _oauth_clients(oauth)
        self._tokens: dict[str, float] = {}  # token -> when it expires (clock)
        self._token_rng = random.Random(f"{seed}/oauth-tokens")
        self._clock = clock or _loop_time
        #: Customers and their points, programs, issued codes, redemptions and transfers.
        self.state = SandboxState(
            clock=self.now, seed=seed, customers=customers, otp_validity=otp_validity
        )
        #: Requests, responses and arrival times per endpoint key; token requests.
        self.stats = Stats()
        #: Loop time at which the server started; ``Faults.throttle_during`` and
        #: ``Faults.outage_during`` count from it.
        self.started_at = 0.0
        self._wall_at_start = 0.0  # time.time() then: the dates of answers count from it
        self._request_ids = random.Random(f"{seed}/request-ids")
        self._windows: dict[str, SlidingWindow] = {}
        self._faults: dict[str, Faults] = {}
        self._faulted: Counter[str] = Counter()
        self._outage: tuple[float, float] | None = None
        self._outage_timer: asyncio.TimerHandle | None = None
        self._runner: web.AppRunner | None = None
        self._address: tuple[int, tuple[object, ...]] | None = None  # (family, sockaddr)
        self._listener: asyncio.Server | None = None
        # A listener being set up after an outage: the task, and the socket it will serve.
        self._listening: tuple[asyncio.Task[asyncio.Server], socket.socket] | None = None
        self._url: str | None = None
        handlers: dict[str, tuple[Handler, int]] = {
            VALIDATION_CODE: (self._validation_code, 200),
            IS_TRANSFERRABLE: (self._is_transferrable, 200),
            IS_REDEEMABLE: (self._is_redeemable, 200),
            REDEEM: (self._redeem, 200),
            TRANSFER: (self._transfer, 201),
        }
        self._endpoints: dict[str, _Endpoint] = {}
        for endpoint in declared.ENDPOINTS:
            handle, ok_status = handlers[endpoint.key]
            served = _Endpoint(
                endpoint.key,
                endpoint.method,
                isinstance(endpoint.envelope, V2Envelope),
                handle,
                ok_status,
            )
            for name in (endpoint.key, *endpoint.aliases):
                self._endpoints["/" + name] = served
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
            app.router.add_route("*", path, self._method_not_allowed(endpoint.method, endpoint))
        app.router.add_route("POST", "/" + TOKEN_PATH, self._token)
        app.router.add_route("*", "/" + TOKEN_PATH, self._method_not_allowed("POST", None))
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
        self._runner = runner
        try:
            loop = asyncio.get_running_loop()
            family, _, _, _, sockaddr = (
                await loop.getaddrinfo(
                    self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
                )
            )[0]
            self._address = (family, sockaddr)
            sock = self._bind()
            # Later binds (after an outage) take the same port, whatever 0 picked.
            self._address = (family, sock.getsockname())
            self._listener = await self._serve(sock)
        except BaseException:
            self._runner = None
            await runner.cleanup()
            raise
        host, port = sock.getsockname()[:2]
        self._url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        self.started_at = self.now()
        self._wall_at_start = time.time()
        self._follow_outage()
        return self

    async def close(self) -> None:
        """Stop listening and drop open connections. Safe to call twice."""
        runner, self._runner = self._runner, None
        if self._outage_timer is not None:
            self._outage_timer.cancel()
            self._outage_timer = None
        self._stop_listening()
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

    # -- listening, and outages --------------------------------------------------------------

    def _bind(self) -> socket.socket:
        assert self._address is not None
        family, sockaddr = self._address
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            # Lets a bind after an outage take the port back at once.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            # Connections queue from here on, before the loop serves the socket.
            sock.listen(_BACKLOG)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    async def _serve(self, sock: socket.socket) -> asyncio.Server:
        assert self._runner is not None
        assert self._runner.server is not None
        try:
            return await asyncio.get_running_loop().create_server(
                self._runner.server, sock=sock, backlog=_BACKLOG
            )
        except BaseException:
            sock.close()
            raise

    def _start_listening(self) -> None:
        sock = self._bind()
        task = asyncio.get_running_loop().create_task(self._serve(sock))
        self._listening = (task, sock)

        def served(done: asyncio.Task[asyncio.Server]) -> None:
            if self._listening is not None and self._listening[0] is done:
                self._listening = None
                if not done.cancelled() and done.exception() is None:
                    self._listener = done.result()

        task.add_done_callback(served)

    def _stop_listening(self) -> None:
        """Refuse connections from now on."""
        listening, self._listening = self._listening, None
        if listening is not None:
            task, sock = listening
            if task.done() and not task.cancelled() and task.exception() is None:
                task.result().close()  # serving already, though ``served`` has not run yet
            task.cancel()
            sock.close()  # a task cancelled before it ran never closes it
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def _follow_outage(self, reached: float = -math.inf) -> None:
        """Listen or not, as the outage window says for now, and come back at its next edge.

        ``reached``: the edge a timer was set for. The loop may run a timer a hair early
        (its clock resolution), so the edge counts as reached whatever the clock says.
        """
        self._outage_timer = None
        if self._runner is None:
            return
        window = self._outage
        elapsed = max(self.now() - self.started_at, reached)
        down = window is not None and window[0] <= elapsed < window[1]
        if down:
            # A host gone down: it refuses new connections and closes the open ones.
            self._stop_listening()
            server = self._runner.server
            for connection in server.connections if server is not None else ():
                connection.force_close()
        elif self._listener is None and self._listening is None:
            self._start_listening()
        edge = next((edge for edge in window or () if edge > elapsed), math.inf)
        if edge < math.inf:
            self._outage_timer = asyncio.get_running_loop().call_later(
                edge - elapsed, self._follow_outage, edge
            )

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
        spread = per_endpoint(faults, Faults.coerce)
        self._outage = _outage_of(spread)
        self._faults = spread
        self._faulted.clear()
        if self._outage_timer is not None:
            self._outage_timer.cancel()
        self._follow_outage()

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
            status, body = endpoint.ok_status, await endpoint.handle(request)
        except Rejected as rejected:
            status, body = rejected.status, endpoint.error(rejected.code, rejected.message)
        if fate.fault is FaultKind.DROP_AFTER_APPLY:
            return self._reset(request, endpoint.key)
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
        token = request.headers.get(TOKEN_HEADER) if self._tokens else None
        if token is not None:
            expires = self._tokens.get(token)
            if expires is not None and self.now() < expires:
                return True
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
        self, key: str | None, status: int, body: JSON, headers: Mapping[str, str] | None = None
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
        self, allow: str, endpoint: _Endpoint | None
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """``endpoint``: whose envelope the answer is in; None for the token endpoint's."""

        # Like 404, the router's answer: it reaches neither the gateway's quota nor the stats.
        async def handle(request: web.Request) -> web.StreamResponse:
            message = f"Method not allowed: {request.method} {request.path}"
            body = (
                oauth_error(405, message)
                if endpoint is None
                else endpoint.error(405, message, gateway=True)
            )
            return self._json(None, 405, body, {"Allow": allow})

        return handle

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        body = v2_errors(404, f"No such resource: {request.method} {request.path}", gateway=True)
        return self._respond(None, 404, orjson.dumps(body))

    # -- OAuth -------------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.StreamResponse:
        """``POST v3/oauth/token/generate``: a new token for a known key and its secret."""
        self.stats.token_requests += 1
        try:
            key, secret = parse_token_request(request.content_type, await request.read())
        except Rejected as rejected:
            return self._json(None, rejected.status, oauth_error(rejected.code, rejected.message))
        expected = self._oauth.get(key)
        if expected is None or not hmac.compare_digest(secret.encode(), expected.encode()):
            return self._json(None, 401, oauth_error(401, "Invalid key or secret"))
        now = self.now()
        # Forget expired tokens here, where they are few, rather than on every request.
        self._tokens = {token: end for token, end in self._tokens.items() if end > now}
        token = f"{self._token_rng.getrandbits(192):048x}"
        self._tokens[token] = now + self.ttl_seconds
        return self._json(None, 200, oauth_token(token, self.ttl_seconds))

    # -- the endpoints -----------------------------------------------------------------------

    async def _validation_code(self, request: web.Request) -> JSON:
        query = parse_validation_code(request.query)
        customer = self.state.find(query.kind, query.value)
        if customer is None:
            failed = v11_status(False, 816, _NOT_FOUND_816)
            return v11_validation_code(echo(None, request.query), query.points, failed)
        self.state.issue_otp(customer)
        issued = v11_status(True, 200, "Validation Code Issued by SMS")
        return v11_validation_code(echo(customer), query.points, issued)

    async def _is_redeemable(self, request: web.Request) -> JSON:
        query = parse_redeemability(request.query)
        self._program(query.program_id)
        customer = self.state.find(query.kind, query.value)
        if customer is None:
            failed = v11_status(False, 816, _NOT_FOUND_816)
            return v11_redeemable(echo(None, request.query), query.points, False, failed)
        code = query.validation_code
        if code is not None and code != self.state.current_otp(customer):
            verdict = v11_status(False, 808, "Invalid validation code")
        elif not customer.can_redeem(query.points):
            verdict = v11_status(False, 803, _TOO_FEW_TO_REDEEM)
        else:
            verdict = v11_status(True, 800, "Points can be redeemed")
            if query.issue_otp:
                self.state.issue_otp(customer)
        redeemable = verdict["success"] == "true"
        return v11_redeemable(echo(customer), query.points, redeemable, verdict)

    async def _redeem(self, request: web.Request) -> JSON:
        self._program(parse_redeem_query(request.query))
        body = parse_redeem(request.content_type, await request.read())
        customer = self.state.find(body.kind, body.value)
        points = body.points
        if customer is None:
            failed = v11_status(False, 816, _NOT_FOUND_816)
            return v11_redemption(echo(None, {body.kind: body.value}), None, points, None, failed)
        code = body.validation_code
        if code is None or code != self.state.current_otp(customer):
            failed = v11_status(False, 808, "Invalid validation code")
        elif not customer.can_redeem(points):
            failed = v11_status(False, 803, _TOO_FEW_TO_REDEEM)
        else:
            done = self.state.redeem(customer, points, code, body.transaction_number)
            redeemed = v11_status(True, 800, "Points Redeemed")
            return v11_redemption(echo(customer), customer, points, done, redeemed)
        return v11_redemption(echo(customer), customer, points, None, failed)

    async def _is_transferrable(self, request: web.Request) -> JSON:
        body = parse_transfer(request.content_type, await request.read(), check=True)
        _, source, target = self._transfer_parties(body)
        transferrable = source.can_transfer(body.points)
        if transferrable and body.issue_otp:
            self.state.issue_otp(source, "transfer")
        return transfer_check(body.points, source, target, transferrable)

    async def _transfer(self, request: web.Request) -> JSON:
        body = parse_transfer(request.content_type, await request.read(), check=False)
        program, source, target = self._transfer_parties(body)
        # The OTP is needed once one was issued (isTransferrable with issueOtp); a code sent
        # when none is outstanding is no valid one either.
        issued = self.state.current_otp(source, "transfer")
        if (body.code is not None or issued is not None) and body.code != issued:
            reject(400, 605, "OTP is either invalid, expired, or null")
        if not source.can_transfer(body.points):
            reject(400, 422, "Invalid points")
        done = self.state.transfer(source, target, body.points, program)
        when = datetime.fromtimestamp(
            self._wall_at_start + done.at - self.started_at, tz=timezone.utc
        )
        return transfer_done(done, source, target, program, body.notes, when)

    def _transfer_parties(
        self, body: TransferBody
    ) -> tuple[Program, SandboxCustomer, SandboxCustomer]:
        program = self._program(body.program_id)
        if body.group and not program.group:
            reject(400, 3316, "Group redemption action executed for non-group redemption payload.")
        source, target = self._customer(body.source), self._customer(body.target)
        if source.user_id == target.user_id:
            reject(400, 418, "From and to customer are the same")
        return program, source, target

    def _program(self, program_id: int | None) -> Program:
        program = (
            self.state.default_program()
            if program_id is None
            else self.state.programs.get(program_id)
        )
        if program is None:
            reject(400, 885, "Invalid program id passed")
        return program

    def _customer(self, identifier: tuple[str, str]) -> SandboxCustomer:
        customer = self.state.find(*identifier)
        if customer is None:
            reject(400, 8015, "Customer not found for the given identifiers")
        return customer
