"""CapillaryClient: owns the session and wires the stack for every call::

endpoint coroutine -> retry loop -> limiter (cooldown gate, then token) -> transport
                   -> decode (pure) -> converter
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncGenerator, Mapping
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import Any, TypeVar

import aiohttp

from ._bulk import CallTrace
from ._converter import structure
from ._endpoints import ENDPOINTS, Endpoint, canonical_key
from ._limiting import InProcessRateLimiter, RateLimit, RateLimiter
from ._oauth import OAuth, TokenCache
from ._outage import Outage, Outages
from ._protocol import ApiRequest, BasicAuth, Region, quota_exhausted_for
from ._retry import NO_RETRY, RetryBudget, RetryPolicy, maybe_applied, retry_delay
from ._transport import AiohttpTransport, Transport
from ._validate import number, whole_number
from .errors import (
    AuthenticationError,
    CapillaryError,
    InvalidRequestError,
    OutcomeUnknownError,
    RateLimitedError,
)
from .points import Points

__all__ = ["CapillaryClient", "ClientStats"]

logger = logging.getLogger("capillary_points_async")

try:
    _VERSION = version("capillary-points-async")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    _VERSION = "0+unknown"

USER_AGENT = f"capillary-points-async/{_VERSION}"

Q = TypeVar("Q")
T = TypeVar("T")

_DEFAULT_RATE_LIMIT = RateLimit(1000, per=60.0)


class ClientStats:
    """Running counters of one client, cheap enough to keep on every call.

    Attributes:
        requests: HTTP requests sent (every attempt counts).
        retries: attempts after the first.
        rate_limited: 429 (or v1.1 517) answers met.
        errors: calls that ended in an error after their last attempt.
        budget_exhausted: retries refused because the retry budget was spent.
        limiter_wait: seconds calls spent waiting for a token or a cooldown, summed over calls.
        cooldown_wait: the part of ``limiter_wait`` spent in cooldowns this client started.
        outage_paused: bulk inputs that met an outage and were paused by it rather than
            failed (each counted once, however long or often it waited; one may still fail
            if the outage outlasts ``max_outage``).
    """

    __slots__ = (
        "_limiter",
        "_outages",
        "budget_exhausted",
        "cooldown_wait",
        "errors",
        "limiter_wait",
        "outage_paused",
        "rate_limited",
        "requests",
        "retries",
    )

    def __init__(self, limiter: RateLimiter, outages: Outages) -> None:
        self._limiter = limiter
        self._outages = outages
        self.requests = 0
        self.retries = 0
        self.rate_limited = 0
        self.errors = 0
        self.budget_exhausted = 0
        self.limiter_wait = 0.0
        self.cooldown_wait = 0.0
        self.outage_paused = 0

    @property
    def outages(self) -> int:
        """Outages begun: times an endpoint was taken as down (see
        :meth:`CapillaryClient.outage`)."""
        return self._outages.count

    @property
    def down_time(self) -> float:
        """Seconds endpoints have been down, summed over endpoints; an outage still going
        counts up to now. For a bulk run against one endpoint, the time it was paused."""
        return self._outages.down_time

    @property
    def effective_rates(self) -> dict[str, float]:
        """Requests per second each endpoint's limiter lets through now, after any
        adaptation to 429s (empty for a limiter that does not report it)."""
        rate_of = getattr(self._limiter, "effective_rate", None)
        if rate_of is None:
            return {}
        rates = {endpoint.key: rate_of(endpoint.key) for endpoint in ENDPOINTS}
        return {key: rate for key, rate in rates.items() if rate is not None}

    def __repr__(self) -> str:
        return (
            f"ClientStats(requests={self.requests}, retries={self.retries}, "
            f"rate_limited={self.rate_limited}, errors={self.errors}, "
            f"budget_exhausted={self.budget_exhausted}, "
            f"limiter_wait={self.limiter_wait:.3f}, cooldown_wait={self.cooldown_wait:.3f}, "
            f"outages={self.outages}, outage_paused={self.outage_paused}, "
            f"down_time={self.down_time:.3f})"
        )


class CapillaryClient:
    """The asyncio client. Use it as an async context manager, one per process or worker::

        async with CapillaryClient(Region.EU, BasicAuth("till", "password")) as client:
            check = await client.points.is_transferrable(...)

    Args:
        base_url: a :class:`Region` or any base URL (``https://host`` or with a path prefix).
        auth: the till's :class:`BasicAuth`, or :class:`OAuth` credentials (a token is
            fetched on first use, shared by every call and renewed before it expires).
        rate_limit: the proactive quota of every endpoint; ``None`` turns proactive limiting off
            (the 429 cooldown still applies). Capillary documents 1000 per minute for these
            endpoints; production quotas are set per brand.
        endpoint_rate_limits: per-endpoint overrides keyed by path, e.g.
            ``{"v2/points/isTransferrable": RateLimit(300, per=60)}``; a value of None turns
            limiting off for that endpoint. An unknown key is an error, not ignored.
        retry: the :class:`RetryPolicy`; ``None`` sends every request once.
        timeout: seconds one attempt may take (aiohttp ``ClientTimeout.total``).
        max_connections: the connection pool's size.
        session: an aiohttp session you own and close; its defaults apply, our headers and
            timeout are sent per request.
        limiter: where requests wait for their turn (default: in this process). The client
            closes it on exit.
        transport: replaces the aiohttp transport altogether (tests, other runtimes).
        max_response_bytes: the most one response body may occupy (default 4 MiB, hundreds of
            times the largest documented answer); a larger or endless body stops being read
            there and fails the call with :class:`ResponseDecodeError`.

    Attributes:
        points: the endpoints, :class:`~capillary_points_async.points.Points`:
            ``issue_validation_code``, ``is_transferrable`` and their ``*_many`` twins.
        stats: :class:`ClientStats`, running counters of requests, retries, 429s, errors and
            time spent waiting for the limiter.
        base_url: the base URL requests go to.
    """

    def __init__(
        self,
        base_url: Region | str,
        auth: BasicAuth | OAuth,
        *,
        rate_limit: RateLimit | None = _DEFAULT_RATE_LIMIT,
        endpoint_rate_limits: Mapping[str, RateLimit | None] | None = None,
        retry: RetryPolicy | None = RetryPolicy(),  # noqa: B008 - immutable
        timeout: float = 30.0,
        max_connections: int = 100,
        session: aiohttp.ClientSession | None = None,
        limiter: RateLimiter | None = None,
        transport: Transport | None = None,
        max_response_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        url = base_url.value if isinstance(base_url, Region) else base_url
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InvalidRequestError(
                f"base_url must be a Region or an http(s) URL, got {base_url!r}"
            )
        if not isinstance(auth, (BasicAuth, OAuth)):
            raise InvalidRequestError(
                f"auth must be a BasicAuth or an OAuth, got {type(auth).__name__}"
            )
        if rate_limit is not None and not isinstance(rate_limit, RateLimit):
            raise InvalidRequestError(f"rate_limit must be a RateLimit or None, got {rate_limit!r}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise InvalidRequestError(f"retry must be a RetryPolicy or None, got {retry!r}")
        number(timeout, "timeout", unit="of seconds")
        whole_number(max_connections, "max_connections")
        whole_number(max_response_bytes, "max_response_bytes")
        limits: dict[str, RateLimit | None] = {e.key: rate_limit for e in ENDPOINTS}
        for key, limit in (endpoint_rate_limits or {}).items():
            if limit is not None and not isinstance(limit, RateLimit):
                raise InvalidRequestError(
                    f"endpoint_rate_limits[{key!r}] must be a RateLimit or None"
                )
            limits[canonical_key(key)] = limit

        self.base_url = url
        self._auth = auth
        self._limits = limits
        self._retry = policy = retry or NO_RETRY
        self._budget = (
            RetryBudget(policy.budget_ratio, policy.budget_window, policy.budget_min_retries)
            if policy.budget_ratio is not None
            else None
        )
        # When each endpoint's last cooldown started by this client ends (loop time).
        self._cooling_until: dict[str, float] = {}
        self._timeout = float(timeout)
        self._max_connections = max_connections
        self._max_response_bytes = max_response_bytes
        self._session = session
        self._limiter: RateLimiter = limiter or InProcessRateLimiter()
        self._transport = transport
        self._tokens: TokenCache | None = None  # with OAuth, once open
        self._outages = Outages()
        self._opened = False
        self._closed = False
        self._fan_outs: weakref.WeakSet[AsyncGenerator[Any, None]] = weakref.WeakSet()
        #: Counters of requests, retries, 429s and limiter waits since the client was made.
        self.stats = ClientStats(self._limiter, self._outages)
        #: The points endpoints: ``client.points.is_transferrable(...)`` and friends.
        self.points = Points(self)

    def __repr__(self) -> str:
        who = f"username={self._auth.username!r}" if isinstance(self._auth, BasicAuth) else "OAuth"
        return f"CapillaryClient({self.base_url!r}, {who})"

    @property
    def rate_limits(self) -> Mapping[str, RateLimit | None]:
        """The proactive limit in force per endpoint key."""
        return dict(self._limits)

    def outage(self, endpoint: str) -> Outage | None:
        """What this client knows of ``endpoint``'s outage, or None while it takes it as up.

        ``endpoint`` is an endpoint key such as ``"v2/points/isTransferrable"`` (its other
        spellings are accepted). An endpoint is down once a call to it has failed at the
        transport or with a 5xx after all its retries, and up again at the next answer.
        """
        return self._outages.view(canonical_key(endpoint))

    async def __aenter__(self) -> CapillaryClient:
        if self._closed:
            raise RuntimeError("this CapillaryClient is closed; create a new one")
        if self._transport is None:
            # Created here, inside the running loop, as aiohttp requires.
            headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
            if isinstance(self._auth, BasicAuth):
                headers["Authorization"] = self._auth.header
            self._transport = AiohttpTransport(
                self.base_url,
                headers=headers,
                timeout=self._timeout,
                max_connections=self._max_connections,
                session=self._session,
                max_response_bytes=self._max_response_bytes,
            )
        if isinstance(self._auth, OAuth):
            self._tokens = TokenCache(self._auth, self._transport.send)
        self._opened = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop bulk calls in flight, then close the limiter and the transport. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            for generator in list(self._fan_outs):
                await generator.aclose()
        finally:
            try:
                await self._limiter.aclose()
                if self._tokens is not None:
                    await self._tokens.aclose()
            finally:
                if self._transport is not None:
                    await self._transport.aclose()

    def _track(self, generator: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
        self._fan_outs.add(generator)
        return generator

    async def _pause(self, key: str, seconds: float, now: float) -> None:
        """Hold every request to ``key`` for ``seconds``: one shared pause, not a sleep per
        request, capped so that a server asking for an hour does not park every caller."""
        seconds = min(seconds, self._retry.max_retry_after)
        self._cooling_until[key] = max(self._cooling_until.get(key, 0.0), now + seconds)
        await self._limiter.cool_down(key, seconds)

    async def _call(
        self,
        endpoint: Endpoint[Q, T],
        query: Q,
        trace: CallTrace | None = None,
        probe: bool | None = None,
    ) -> T:
        """Send ``query`` through limiter, transport and decoder, retrying per the policy and
        the endpoint's declaration.

        ``probe`` is None for a single call, which fails at once while the endpoint is down
        (unless its turn to probe has come); a bulk input has waited for the endpoint already
        and says whether it goes as the probe.
        """
        transport = self._transport
        if transport is None or self._closed:
            raise RuntimeError(
                "CapillaryClient is not open: use 'async with CapillaryClient(...) as client'"
            )
        key = endpoint.key
        outages = self._outages
        loop = asyncio.get_running_loop()
        if probe is None:
            try:
                probe = outages.admit(key, loop.time())
            except CapillaryError:
                self.stats.errors += 1
                raise
        try:
            result = await self._send(endpoint, query, trace)
        except CapillaryError as exc:
            outages.settle(key, exc, loop.time(), probe=probe)
            raise
        except BaseException:  # cancelled: a probe that will never report frees its turn
            if probe:
                outages.abandon(key)
            raise
        outages.up(key)
        return result

    async def _send(self, endpoint: Endpoint[Q, T], query: Q, trace: CallTrace | None) -> T:
        request = endpoint.request(query)
        tokens = self._tokens
        transport = self._transport
        assert transport is not None  # _call checked
        stats = self.stats
        refreshed = False  # a 401 renews the OAuth token and re-sends once per call
        started = 0.0  # when the first attempt was sent: budgets count from there
        attempt = 0
        while True:
            attempt += 1
            now = await self._turn(endpoint.key, attempt, started)
            sent: ApiRequest | None = None
            try:
                sent = request if tokens is None else await tokens.authorize(request)
                stats.requests += 1
                if trace is not None:
                    trace.attempts += 1
                if attempt == 1:
                    # The retry budget counts from the first send, not from the wait for a
                    # token: a bulk run may queue for minutes and that is not a failure.
                    started = now
                    if self._budget is not None:
                        self._budget.record_call(now)
                return await self._attempt(endpoint, sent, transport, attempt)
            except CapillaryError as exc:
                if sent is None:  # no token could be had: nothing was sent
                    stats.errors += 1
                    raise
                if tokens is not None and not refreshed and isinstance(exc, AuthenticationError):
                    # Answered 401 before acting: renew the token and send once more.
                    refreshed = True
                    tokens.expire(sent)
                    stats.retries += 1
                    continue
                delay = await self._retry_after_failure(endpoint, request, exc, attempt, started)
                if delay is None:
                    stats.errors += 1
                    if not endpoint.idempotent and maybe_applied(exc):
                        raise _outcome_unknown(endpoint, query, request, exc) from exc
                    raise
                stats.retries += 1
                if delay:
                    await asyncio.sleep(delay)

    async def _turn(self, key: str, attempt: int, started: float) -> float:
        """Wait for the endpoint's cooldown and a token; return the loop time after it.

        A call never waits out a cooldown longer than the longest server wait it honours or
        than what is left of its ``max_time``: it fails at once, saying how long is left.
        """
        stats = self.stats
        loop = asyncio.get_running_loop()
        waited_from = loop.time()
        cooling = self._cooling_until.get(key, 0.0) - waited_from
        if cooling > 0:
            policy = self._retry
            elapsed = waited_from - started if attempt > 1 else 0.0
            allowed = min(policy.max_retry_after, policy.max_time - elapsed)
            if cooling > allowed:
                stats.errors += 1
                raise RateLimitedError(
                    f"{key} is paused after a 429 for another {cooling:.1f} s, longer than "
                    f"this call may wait ({max(allowed, 0.0):.1f} s); nothing was sent",
                    status=429,
                    retry_after=cooling,
                )
        try:
            await self._limiter.acquire(key, self._limits[key])
        except CapillaryError:
            stats.errors += 1  # nothing was sent for this attempt: it does not count
            raise
        now = loop.time()
        stats.limiter_wait += now - waited_from
        if self._cooling_until.get(key, 0.0) > waited_from:
            stats.cooldown_wait += min(now, self._cooling_until[key]) - waited_from
        return now

    async def _attempt(
        self, endpoint: Endpoint[Q, T], request: ApiRequest, transport: Transport, attempt: int
    ) -> T:
        """Send once; the decoded, structured result or the typed error."""
        raw = await transport.send(request)
        wall = time.time()
        if raw.status != 429:
            exhausted = quota_exhausted_for(raw.headers, wall)
            if exhausted:
                await self._pause(endpoint.key, exhausted, asyncio.get_running_loop().time())
        decoded = endpoint.decode(raw, wall)
        result = structure(decoded.fields(), endpoint.model, endpoint.key)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> HTTP %d (attempt %d, request id %s)",
                request.method,
                endpoint.key,
                raw.status,
                attempt,
                decoded.request_id,
            )
        return result

    async def _retry_after_failure(
        self,
        endpoint: Endpoint[Q, T],
        request: ApiRequest,
        error: CapillaryError,
        attempt: int,
        started: float,
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to raise ``error``.

        A 429 pauses the whole endpoint (the retry then waits at its gate, so 0 is returned);
        the policy and the endpoint's declaration decide whether to retry at all, and the
        retry budget whether it may.
        """
        stats = self.stats
        now = asyncio.get_running_loop().time()
        policy = self._retry
        delay = retry_delay(policy, attempt, error, now - started, idempotent=endpoint.idempotent)
        rate_limited = isinstance(error, RateLimitedError)
        if rate_limited:
            stats.rate_limited += 1
            wait = error.retry_after  # type: ignore[attr-defined]
            await self._pause(
                endpoint.key, policy.backoff_wait(attempt) if wait is None else wait, now
            )
        if delay is not None and self._budget is not None and not self._budget.try_retry(now):
            stats.budget_exhausted += 1
            delay = None
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s attempt %d failed: %s; %s",
                request.method,
                endpoint.key,
                attempt,
                error,
                "giving up" if delay is None else f"retrying in {delay:.3f}s",
            )
        return 0.0 if delay is not None and rate_limited else delay


def _outcome_unknown(
    endpoint: Endpoint[Any, Any], query: object, request: ApiRequest, error: CapillaryError
) -> OutcomeUnknownError:
    request_id = getattr(error, "request_id", None)
    return OutcomeUnknownError(
        f"{request.method} {endpoint.key} may have been applied, but no answer says so "
        f"({type(error).__name__}: {error}); it was not re-sent: check before trying again",
        request=query,
        request_id=request_id if isinstance(request_id, str) else None,
        method=request.method,
        path=endpoint.key,
    )
