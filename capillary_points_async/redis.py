"""A :class:`~capillary_points_async.RateLimiter` shared through Redis by many processes.

Several worker processes on several hosts that send with one Capillary API key share one quota
(API-NOTES.md, "Rate limits"); each respecting "the" limit on its own sends N times too much.
:class:`RedisRateLimiter` keeps the bucket and the 429 cooldown of every endpoint in Redis::

    limiter = RedisRateLimiter.from_url("redis://:secret@redis.internal:6379/0", namespace="org-42")
    async with CapillaryClient(
        Region.EU, auth, rate_limit=RateLimit(1000, per=60.0), limiter=limiter
    ) as client:
        ...

Install the ``redis`` extra (``pip install "capillary-points-async[redis]"``, redis-py 5.0.1 or
later); any Redis server from 5.0 on (tested with 7.0).

Semantics
---------
* **One algorithm with the in-process limiter.** The bucket and its adaptation to 429s are
  ``_bucket.py``'s, transcribed into Lua (a test feeds both the same events and compares their
  answers): a GCRA of capacity ``burst`` draining at :attr:`RateLimit.rate`, so no window of
  ``per * (1 + safety_margin)`` seconds sees more than ``limit`` slots for an endpoint key,
  summed over every process using the same Redis and namespace. Each process also spaces its
  own departures by the bucket's interval when a busy event loop wakes several callers late,
  so that lateness costs rate rather than bunching requests.
* **Reservation, not polling.** One Lua script reads the server's clock (``TIME``), reserves the
  caller's slot and returns how long to wait for it; the caller sleeps exactly that long. Slots
  are handed out in the order the script runs, which is FIFO across processes, and nobody
  starves. An acquire that need not wait costs one round trip; one that waits costs a second,
  cheap one shortly before its slot, to honour a cooldown that began meanwhile (made before
  the slot rather than after it, so that the request still leaves on time).
* **One bucket per endpoint key.** Its state does not depend on the :class:`RateLimit`
  passed: every process should pass the same one for a key, and a changed limit applies from
  the next request on.
* **Server time only.** Hosts' clocks never meet: the script computes every instant on the
  Redis server and callers only ever receive durations.
* **Shared cooldown.** :meth:`RedisRateLimiter.cool_down` stores the deadline (server time) for
  the key, never shortening a longer one; every acquire of that key, in any process, waits it
  out. A request that had already reserved a slot falling inside the cooldown gives the slot up
  and queues again afterwards; so does one whose slot comes after a 429 of its own process,
  even past the check before the slot.
* **Adaptive, and shared.** With ``adaptive=True`` a 429 sets the endpoint's rate just under
  what the server accepted in the window before it, measured from the departures of every
  process (counted in Redis per twentieth of a window: one ``HINCRBY`` and ``PEXPIRE`` per
  request), holds it, and probes upwards rarely: the rule of ``_bucket.py``, the same as the
  in-process limiter's. The adaptation lives in Redis: every process slows down together, the
  first 429 of a cooldown measures once, and each further one, from any process, counts as a
  request the server refused.
* **Cancellation.** A caller cancelled while sleeping for its reserved slot loses the slot: it
  stays spent, which can only make the aggregate rate lower, never higher. A caller whose
  cooldown check before its slot fails (Redis went away meanwhile) keeps the slot.
* **Bounded state.** Each write sets a PEXPIRE equal to the state's horizon (the bucket's
  theoretical arrival time, the cooldown's deadline, the adaptation's return to the configured
  rate, a window past the last departure); once it has passed, a missing key means exactly the
  same as the stored one, so nothing is lost and nothing accumulates. The departures' hash
  holds at most 22 sub-windows. Eviction
  would lose state early (all these keys carry a TTL, so ``volatile-*`` policies pick them
  first): use a Redis that does not evict, such as the default ``maxmemory-policy noeviction``.
* **Failures.** A Redis outage delays requests rather than failing them. The first failed
  round trip logs a warning and starts one probe per process, which pings Redis with capped
  exponential backoff and full jitter (from 50 ms, doubling, up to 2 s between pings); every
  acquire and cooldown of the process waits for that probe instead of trying Redis itself, and
  carries on in the shared bucket once Redis answers. An acquire still waiting when its
  ``acquire_timeout`` has passed raises :class:`RateLimiterUnavailableError`, naming the last
  error; with ``acquire_timeout=None`` it waits for Redis as it would for a long queue.
  With ``fallback=True`` the limiter instead logs one warning and switches at once to an
  :class:`~capillary_points_async.InProcessRateLimiter` (each process then enforces the quota on
  its own), trying Redis again every ``fallback_recheck`` seconds. When Redis answers, callers
  still queued in the in-process limiter leave it and queue in the shared bucket, so that no
  local turn is granted on top of the shared quota. Every Redis round trip is bounded by
  ``command_timeout`` and a whole acquire by ``acquire_timeout``
  (:class:`RateLimiterTimeoutError` for a queue or cooldown). The Redis URL's password never
  appears in a log line, message or ``repr``.

Why not a library
-----------------
Two well-kept libraries were read (source of pyrate-limiter 4.5.1 and limits 5.8.0):

* **pyrate-limiter** has an async Redis backend and even a GCRA state store, but takes ``now``
  from each host's wall clock (``RedisBucket.now`` carries a "TODO: Use a Redis time source"),
  and its blocking acquire rejects, sleeps the retry-after plus a 50 ms buffer and tries again:
  every waiter wakes and races, so there is no order among processes and a waiter can lose
  every race. It has no notion of a shared cooldown.
* **limits** (``limits.aio`` with the Redis storage) only answers ``hit``/``test`` (allowed or
  not); waiting is left to the caller, i.e. polling. Its timestamps come from the client's
  ``time.time()``, its expiries are whole seconds, and it has no cooldown either.

Neither gives a blocking, fair, server-timed acquire with a shared cooldown, so this module keeps
its own two short Lua scripts on top of redis-py's ``redis.asyncio``. The outage probe's waits
come from ``backoff`` (``backoff.expo`` and ``backoff.full_jitter``, its public generators),
which the retry layer already uses.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import backoff
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from ._bucket import LUA, interval_us, window_us
from ._limiting import InProcessRateLimiter, RateLimit
from .errors import CapillaryError, InvalidRequestError

__all__ = ["RateLimiterTimeoutError", "RateLimiterUnavailableError", "RedisRateLimiter"]

_logger = logging.getLogger("capillary_points_async")

_T = TypeVar("_T")

# Times the fallback's periods; a module attribute so that tests can move it on without sleeping.
_clock = time.monotonic

# Prefix of every key this module writes; the namespace and the endpoint key follow it inside a
# hash tag, so that both keys of one endpoint live in the same Redis Cluster slot (a script may
# only touch keys of one slot there).
_KEY_PREFIX = "capillary-points"

# How long before its reserved slot a waiting caller checks the cooldown once more: enough for
# a Redis round trip on a busy host, small next to any Retry-After (a cooldown that another
# process begins inside it is missed, like one that begins while the request is on the wire;
# one of this process is seen).
_RECHECK_LEAD = 0.01

# The probe that reaches Redis again during an outage (fallback off) waits
# backoff.expo(factor=_PROBE_FIRST, max_value=_PROBE_MAX) seconds between pings, with full
# jitter: a restarted Redis is found within a fraction of a second, a long outage costs one ping
# per process every second on average, and processes that lost Redis together do not return
# together.
_PROBE_FIRST = 0.05
_PROBE_MAX = 2.0

# Replies of the acquire script, first element.
_GRANTED = 1
_COOLING = 0
_TOO_LONG = -1

# The scripts: the bucket of _bucket.py (its Lua transcription, bucket.LUA) behind the shared
# cooldown. Each is a function of `now`, called here with the Redis server's clock; the tests
# call the same functions with a clock of their own (`_script(body, now)`).
_SERVER_NOW = """(function()
    -- Redis 3.2 to 4 replicate scripts verbatim unless told otherwise, and refuse writes after
    -- TIME; from Redis 5 on effects replication is the default and this call is a no-op.
    if redis.replicate_commands then redis.replicate_commands() end
    local clock = redis.call('TIME')
    return tonumber(clock[1]) * 1000000 + tonumber(clock[2])
end)()"""

_ACQUIRE_BODY = """
-- KEYS[1]: cooldown deadline; KEYS[2]: the bucket's tat; KEYS[3]: its adaptation; KEYS[4]: its
--   departures. Times in microseconds of the Redis server's clock.
-- ARGV[1]: the configured drain interval in us (0: only check the cooldown, reserve nothing)
-- ARGV[2]: burst
-- ARGV[3]: longest wait in us the caller accepts (-1: any)
-- ARGV[4]: the window `per` in us (0: not adaptive: no departures counted, no adaptation)
-- ARGV[5]: on a check (ARGV[1] = 0), the slot in us to count as a departure (0: none)
-- Returns {status, wait_us, now_us, factor}: status 1 = slot reserved, send after wait_us;
-- 0 = cooling down, try again after wait_us; -1 = the slot is further than ARGV[3], nothing
-- was reserved. factor: the adaptive factor, as a string ('%.17g').
local function acquire(now)
    local cooldown = tonumber(redis.call('GET', KEYS[1]) or 0)
    if cooldown > now then
        return {0, cooldown - now, now, '1'}
    end
    local interval, per = tonumber(ARGV[1]), tonumber(ARGV[4])
    if interval == 0 then
        local slot = tonumber(ARGV[5])
        if per > 0 and slot > 0 then
            depart(KEYS[4], slot, now, per)
        end
        return {1, 0, now, '1'}
    end
    local status, wait, factor = reserve(KEYS[2], KEYS[3], KEYS[4], now, interval,
                                         tonumber(ARGV[2]), per, tonumber(ARGV[3]))
    return {status, wait, now, exact(factor)}
end
"""

_COOL_DOWN_BODY = """
-- KEYS as for acquire. ARGV[1]: cooldown length in us. ARGV[2]: the window `per` in us (0: do
-- not adapt). ARGV[3]: the configured limit; ARGV[4]: burst.
-- Returns 1 if the deadline moved, 0 if a longer cooldown was already running.
local function cool_down(now)
    local length, per = tonumber(ARGV[1]), tonumber(ARGV[2])
    local deadline = now + length
    local running = tonumber(redis.call('GET', KEYS[1]) or 0)
    if per > 0 then
        -- The first 429 of a cooldown measures the quota (once, however many processes
        -- report one); the others were requests that left before it and were not counted.
        if running <= now then
            cut(KEYS[3], KEYS[4], now, per, tonumber(ARGV[3]), tonumber(ARGV[4]))
        else
            reject(KEYS[3], now, per, tonumber(ARGV[3]), tonumber(ARGV[4]))
        end
    end
    if running >= deadline then
        return 0
    end
    -- The key expires with the cooldown itself: nothing to clean up.
    redis.call('SET', KEYS[1], string.format('%.0f', deadline), 'PX', math.ceil(length / 1000))
    return 1
end
"""


def _script(body: str, now: str) -> str:
    """A script: the bucket's functions, ``body``, and a call of its function with ``now``."""
    name = body.split("local function ", 1)[1].split("(", 1)[0]
    return f"{LUA}{body}\nreturn {name}({now})\n"


_ACQUIRE_LUA = _script(_ACQUIRE_BODY, _SERVER_NOW)
_COOL_DOWN_LUA = _script(_COOL_DOWN_BODY, _SERVER_NOW)


class RateLimiterUnavailableError(CapillaryError):
    """The shared rate limiter's Redis could not be reached or failed to answer.

    Nothing was sent to Capillary. Raised by :class:`RedisRateLimiter` (unless it was built with
    ``fallback=True``) once Redis has stayed unavailable until the acquire's ``acquire_timeout``
    passed, or when the limiter is closed. The message names the Redis server without its
    password.
    """

    retryable = False


class RateLimiterTimeoutError(CapillaryError):
    """A request would have had to wait longer than the limiter's ``acquire_timeout`` for its
    turn (a long queue of requests, or a long cooldown after a 429). Nothing was sent, and no
    slot of the shared quota was taken."""

    retryable = False


class _RedisFailed(Exception):
    """Internal: one Redis round trip failed; the cause is chained."""


class _Pacer:
    """One endpoint's departures from this process: the local GCRA of :meth:`_pace`."""

    __slots__ = ("tat", "turn")

    def __init__(self) -> None:
        self.tat = 0.0  # loop time
        self.turn = asyncio.Lock()


class RedisRateLimiter:
    """A :class:`~capillary_points_async.RateLimiter` whose buckets and cooldowns live in Redis,
    so that every process using the same Redis and ``namespace`` shares one quota.

    Build it with :meth:`from_url` (the limiter then owns and closes the client), or pass an
    existing ``redis.asyncio.Redis`` client (it stays the caller's to close). The semantics,
    and why no rate-limiting library is used, are in this module's docstring.

    Args:
        client: a ``redis.asyncio.Redis`` client. Its ``decode_responses`` setting does not
            matter. It should have socket timeouts; ``command_timeout`` bounds each call anyway.
        namespace: what the quota belongs to, such as the organisation or API key name. Limiters
            with the same namespace share buckets and cooldowns; different namespaces never
            touch each other's keys.
        acquire_timeout: longest time in seconds an acquire may wait for its turn, cooldowns
            and Redis outages included. A turn or cooldown that would end past it raises
            :class:`RateLimiterTimeoutError` at once, without taking a slot; a Redis outage
            raises :class:`RateLimiterUnavailableError` when it has passed. ``None`` waits as
            long as the queue needs and as long as Redis is away: the caller chose no bound,
            and failing at once instead would burn through a bulk run's input during a short
            outage (each outage logs a warning, so a long one does not go unnoticed).
        command_timeout: longest time in seconds one Redis round trip may take before it counts
            as Redis being unavailable.
        adaptive: as for :class:`~capillary_points_async.InProcessRateLimiter`, by the same
            rule: a 429 sets the endpoint's rate just under what the server accepted in the
            window before it. The adaptation is shared by every process, and measured once per
            cooldown however many of them report a 429 of the same burst.
        fallback: when Redis is unavailable, log a warning once and limit in this process with
            an :class:`~capillary_points_async.InProcessRateLimiter` instead of raising
            :class:`RateLimiterUnavailableError` or waiting for Redis. Redis is tried again
            every ``fallback_recheck`` seconds and used as soon as it answers, by the callers
            queued in the in-process limiter too.
        fallback_recheck: seconds between attempts to reach Redis while falling back.
    """

    __slots__ = (
        "_acquire_script",
        "_adaptive",
        "_cause",
        "_client",
        "_closed",
        "_command_timeout",
        "_cool_down_script",
        "_cooling",
        "_factors",
        "_fallback",
        "_fallback_recheck",
        "_fallback_until",
        "_intervals",
        "_keys",
        "_limits",
        "_local",
        "_owns_client",
        "_pacers",
        "_probe",
        "_recovered",
        "_timeout",
        "_waiting",
        "_warned",
        "_where",
        "namespace",
    )

    def __init__(
        self,
        client: Redis,
        *,
        namespace: str,
        acquire_timeout: float | None = 300.0,
        command_timeout: float = 2.0,
        adaptive: bool = True,
        fallback: bool = False,
        fallback_recheck: float = 5.0,
    ) -> None:
        if not isinstance(namespace, str) or not namespace:
            raise InvalidRequestError(f"namespace must be a non-empty string, got {namespace!r}")
        if acquire_timeout is not None and not _positive(acquire_timeout):
            raise InvalidRequestError(
                "acquire_timeout must be a positive number of seconds or None, "
                f"got {acquire_timeout!r}"
            )
        if not _positive(command_timeout):
            raise InvalidRequestError(
                f"command_timeout must be a positive number of seconds, got {command_timeout!r}"
            )
        if not _positive(fallback_recheck):
            raise InvalidRequestError(
                f"fallback_recheck must be a positive number of seconds, got {fallback_recheck!r}"
            )
        self.namespace = namespace
        self._client = client
        self._owns_client = False
        self._where = _describe_client(client)
        self._timeout = acquire_timeout
        self._command_timeout = command_timeout
        self._adaptive = adaptive
        self._fallback = fallback
        self._fallback_recheck = fallback_recheck
        # _clock() until which requests go to the local limiter; 0.0 while Redis is fine.
        self._fallback_until = 0.0
        self._warned = False
        # While Redis is believed unavailable: a future resolved when it answers again, the last
        # error, and (fallback off) the probe task and how many callers wait for it.
        self._recovered: asyncio.Future[None] | None = None
        self._cause: BaseException | None = None
        self._probe: asyncio.Task[None] | None = None
        self._waiting = 0
        self._local = InProcessRateLimiter(adaptive=adaptive) if fallback else None
        self._closed = False
        # register_script computes the SHA once; calls use EVALSHA and reload on NOSCRIPT (a
        # restarted or failed-over Redis), so the common case is a single round trip.
        self._acquire_script = client.register_script(_ACQUIRE_LUA)
        self._cool_down_script = client.register_script(_COOL_DOWN_LUA)
        self._keys: dict[str, tuple[str, str, str, str]] = {}
        self._intervals: dict[RateLimit, int] = {}
        # Per endpoint key, the limit this process last used and the adaptive factor the script
        # last reported: what effective_rate() and the adaptive cut of cool_down() go by.
        self._limits: dict[str, RateLimit] = {}
        self._factors: dict[str, float] = {}
        # Per endpoint key, the loop time until which a cooldown this process stores in Redis
        # runs: a caller whose slot comes inside it gives the slot up without asking Redis.
        self._cooling: dict[str, float] = {}
        self._pacers: dict[str, _Pacer] = {}

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str,
        acquire_timeout: float | None = 300.0,
        command_timeout: float = 2.0,
        max_connections: int = 16,
        adaptive: bool = True,
        fallback: bool = False,
        fallback_recheck: float = 5.0,
    ) -> RedisRateLimiter:
        """Build a limiter with its own client for ``url`` (``redis://``, ``rediss://`` or
        ``unix://``, as redis-py reads them); :meth:`aclose` closes it.

        Args:
            url: where Redis is, credentials included. It is never logged with its password.
            namespace: as for the constructor: what the quota belongs to.
            acquire_timeout: as for the constructor: the longest an acquire may wait.
            command_timeout: as for the constructor, and also the socket connect and read
                timeout.
            max_connections: connections this process opens at most; further acquires wait for
                a free one (each holds it for one round trip only) instead of opening one per
                waiting request.
            adaptive: as for the constructor.
            fallback: as for the constructor.
            fallback_recheck: as for the constructor.
        """
        if (
            isinstance(max_connections, bool)
            or not isinstance(max_connections, int)
            or max_connections < 1
        ):
            raise InvalidRequestError(
                f"max_connections must be a whole number >= 1, got {max_connections!r}"
            )
        if not _positive(command_timeout):
            raise InvalidRequestError(
                f"command_timeout must be a positive number of seconds, got {command_timeout!r}"
            )
        try:
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=command_timeout,
                socket_timeout=command_timeout,
                socket_connect_timeout=command_timeout,
                # redis-py's default retries ten times with up to a second between tries, which
                # turns a dead Redis into a long stall; one quick retry still rides out a pooled
                # connection that a Redis restart closed.
                retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
            )
        except ValueError:
            # redis-py's message may quote the URL; ours names it without the password.
            raise InvalidRequestError(f"not a usable Redis URL: {_redact(url)}") from None
        limiter = cls(
            Redis.from_pool(pool),
            namespace=namespace,
            acquire_timeout=acquire_timeout,
            command_timeout=command_timeout,
            adaptive=adaptive,
            fallback=fallback,
            fallback_recheck=fallback_recheck,
        )
        limiter._owns_client = True
        limiter._where = _redact(url)
        return limiter

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._where}, namespace={self.namespace!r})"

    def effective_rate(self, key: str) -> float | None:
        """Requests per second the shared bucket of ``key`` lets through, after any adaptive
        cut, as of this process's last acquire of it (None: no limited acquire yet)."""
        if self._falling_back() and self._local is not None:
            return self._local.effective_rate(key)
        limit = self._limits.get(key)
        if limit is None:
            return None
        return limit.rate * self._factors.get(key, 1.0)

    async def acquire(self, key: str, limit: RateLimit | None) -> None:
        """Return when one request to ``key`` may be sent: after any cooldown of ``key`` and,
        unless ``limit`` is None, once this caller's reserved slot of the shared bucket has come.

        Raises:
            RateLimiterTimeoutError: the wait would exceed ``acquire_timeout``.
            RateLimiterUnavailableError: Redis stayed unavailable until ``acquire_timeout``
                passed (``fallback`` off), or the limiter was closed.
        """
        loop = asyncio.get_running_loop()
        deadline = None if self._timeout is None else loop.time() + self._timeout
        while True:
            self._check_open()
            if self._falling_back():
                if await self._acquire_locally(key, limit, deadline, loop):
                    return
                # Redis answered while this caller queued locally: it queues in Redis instead.
            elif self._probe is not None:
                await self._wait_for_redis(deadline, loop)
            else:
                try:
                    await self._acquire_shared(key, limit, deadline, loop)
                except _RedisFailed as exc:
                    self._on_redis_failure(exc)
                else:
                    return

    async def cool_down(self, key: str, seconds: float) -> None:
        """Hold every request to ``key``, in every process sharing the namespace, for
        ``seconds`` from now (server time). A shorter cooldown never cuts a longer one.

        During a Redis outage this waits for Redis like :meth:`acquire` does (and raises as it
        does), then shares what is left of the cooldown."""
        self._check_open()
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not math.isfinite(seconds)
        ):
            raise InvalidRequestError(f"cooldown seconds must be a finite number, got {seconds!r}")
        if seconds <= 0:
            return
        if self._local is not None:
            # Kept locally as well, so that a fallback starting during the cooldown honours it.
            await self._local.cool_down(key, seconds)
        limit = self._limits.get(key) if self._adaptive else None
        # Without a limit there is no rate to cut (the in-process limiter has no bucket then).
        adapt = (0, 0, 0) if limit is None else (window_us(limit), limit.limit, limit.burst)
        loop = asyncio.get_running_loop()
        ends = loop.time() + seconds
        deadline = None if self._timeout is None else loop.time() + self._timeout
        while True:
            self._check_open()
            if self._falling_back():
                return
            if self._probe is not None:
                await self._wait_for_redis(deadline, loop)
                continue
            left = math.ceil((ends - loop.time()) * 1e6)
            if left <= 0:
                return  # it ran out while Redis was away
            # Noted here at once, not after the round trip: callers of this process whose slot
            # comes meanwhile give it up rather than send into the cooldown. Only while Redis
            # has it, though: the note stands for the shared cooldown.
            noted = self._cooling.get(key, 0.0)
            self._cooling[key] = max(noted, ends)
            try:
                await self._eval(self._cool_down_script, self._keys_for(key), (left, *adapt))
            except _RedisFailed as exc:
                self._cooling[key] = noted
                self._on_redis_failure(exc)
            else:
                return

    async def aclose(self) -> None:
        """Close the Redis client if :meth:`from_url` made it, and the fallback limiter's timers.
        A client passed to the constructor is left open for its owner."""
        if self._closed:
            return
        self._closed = True
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()
            await asyncio.gather(probe, return_exceptions=True)
        recovered, self._recovered = self._recovered, None
        if recovered is not None and not recovered.done():
            recovered.set_result(None)  # wakes the waiters, which find the limiter closed
        if self._local is not None:
            await self._local.aclose()
        if self._owns_client:
            await self._client.aclose()

    # -- shared path ----------------------------------------------------------------------------

    async def _acquire_shared(
        self,
        key: str,
        limit: RateLimit | None,
        deadline: float | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        keys = self._keys_for(key)
        if limit is None:
            interval = burst = per = 0
        else:
            interval, burst = self._interval_for(limit), limit.burst
            per = window_us(limit) if self._adaptive else 0
            self._limits[key] = limit
        slot: float | None = None  # loop time of this caller's reserved slot, once it has one
        server_slot = 0  # the same slot in microseconds of the Redis server's clock
        counted = False  # whether Redis has counted this caller as a departure
        while True:
            max_wait = -1 if deadline is None else max(0, int((deadline - loop.time()) * 1e6))
            # With a slot reserved, the call only checks the cooldown (interval 0) and counts
            # the slot as a departure.
            args = (
                (interval, burst, max_wait, per, 0)
                if slot is None
                else (0, 0, max_wait, per, server_slot)
            )
            try:
                reply = await self._eval(self._acquire_script, keys, args)
            except _RedisFailed:
                if slot is None:
                    raise
                # The slot is this caller's in the shared bucket already: only a cooldown begun
                # meanwhile would make it give the slot up, and Redis cannot tell now. It keeps
                # the slot, as if that cooldown had begun while the request was on the wire,
                # rather than waste a turn counted against the quota. The next caller to reach
                # for Redis finds the outage.
                reply = (_GRANTED, 0)
            else:
                # Redis counts a departure with a reservation for now, and for a later slot
                # with the check before it.
                counted = per > 0 and (slot is not None or int(reply[1]) == 0)
            status, wait_us = int(reply[0]), int(reply[1])
            if status != _COOLING and slot is None and interval:
                self._factors[key] = float(reply[3])
            if status == _GRANTED:
                if slot is None and wait_us > 0:
                    slot = loop.time() + wait_us / 1e6
                    server_slot = int(reply[2]) + wait_us
                    # The cooldown is checked again just before the slot rather than after it,
                    # so that the request leaves at its slot and not one Redis round trip
                    # later: that round trip's length varies with load and would bunch
                    # departures.
                    early = slot - _RECHECK_LEAD - loop.time()
                    if early > 0:
                        await self._sleep(early)
                    continue
                if slot is not None:
                    remaining = slot - loop.time()
                    if remaining > 0:
                        await self._sleep(remaining)
                await self._pace(key, limit, loop)
                cooling = self._cooling.get(key, 0.0) - loop.time()
                if cooling <= 0:
                    return
                # A 429 in this process since Redis was asked: the slot is given up, as the
                # in-process limiter would. Redis counted it as a departure, so it is reported
                # like one more 429 of that cooldown (the server did not count it either).
                slot, server_slot = None, 0
                if counted:
                    assert limit is not None  # per > 0
                    report = (math.ceil(cooling * 1e6), per, limit.limit, burst)
                    await self._eval(self._cool_down_script, keys, report)
            elif status == _COOLING:
                if max_wait >= 0 and wait_us > max_wait:
                    raise self._timeout_error(key, wait_us / 1e6, "a cooldown of")
                # A slot reserved before the cooldown began is lost: waiting the cooldown out
                # and queueing again is the only way not to send into it.
                slot, server_slot = None, 0
                await self._sleep(wait_us / 1e6)
            else:  # _TOO_LONG: the script reserved nothing
                raise self._timeout_error(key, wait_us / 1e6, "a queue of")

    async def _pace(
        self, key: str, limit: RateLimit | None, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Space this process's departures of ``key`` as the shared bucket spaces its slots,
        judged at the real departure (the in-process limiter's Bucket.left_at): a busy event
        loop that wakes several callers late sends them an interval apart, not together.
        Punctual departures never wait here; late ones cost rate instead of bunching."""
        if limit is None:
            return
        pacer = self._pacers.get(key)
        if pacer is None:
            pacer = self._pacers[key] = _Pacer()
        interval = self._interval_for(limit) / self._factors.get(key, 1.0) / 1e6
        async with pacer.turn:
            wait = pacer.tat - (limit.burst - 1) * interval - loop.time()
            if wait > 0:
                # Not the _sleep seam: this is no wait for the shared bucket.
                await asyncio.sleep(wait)
            pacer.tat = max(pacer.tat, loop.time()) + interval

    async def _eval(self, script: AsyncScript, keys: Sequence[str], args: Sequence[int]) -> Any:
        """Run one script; see :meth:`_round_trip`."""
        return await self._round_trip(script(keys=keys, args=args))

    async def _round_trip(self, call: Awaitable[_T]) -> _T:
        """Await one Redis call, bounded by ``command_timeout``; every failure becomes
        _RedisFailed, and a success ends an outage or a fallback at once."""
        try:
            reply = await _bounded(call, self._command_timeout)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            raise _RedisFailed(type(exc).__name__) from exc
        self._on_redis_success()
        return reply

    async def _sleep(self, seconds: float) -> None:
        # One seam for waiting, so that tests can observe and steer the waits.
        await asyncio.sleep(seconds)

    def _keys_for(self, key: str) -> tuple[str, str, str, str]:
        keys = self._keys.get(key)
        if keys is None:
            tag = f"{_KEY_PREFIX}:{{{self.namespace}|{key}}}"
            keys = self._keys[key] = (
                f"{tag}:cooldown",
                f"{tag}:tat",
                f"{tag}:adapt",
                f"{tag}:departures",
            )
        return keys

    def _interval_for(self, limit: RateLimit) -> int:
        interval = self._intervals.get(limit)
        if interval is None:
            interval = self._intervals[limit] = interval_us(limit)
        return interval

    def _timeout_error(self, key: str, wait: float, what: str) -> RateLimiterTimeoutError:
        return RateLimiterTimeoutError(
            f"{key}: {what} {wait:.3f} s exceeds acquire_timeout={self._timeout} s "
            f"(namespace {self.namespace!r}); nothing was sent"
        )

    # -- outages and the fallback ---------------------------------------------------------------

    def _falling_back(self) -> bool:
        return self._fallback_until > _clock()

    def _on_redis_failure(self, exc: _RedisFailed) -> None:
        """Note a failed round trip: fall back, or (fallback off) start the outage's probe."""
        self._cause = cause = exc.__cause__
        reason = _reason(cause)
        new = self._recovered is None
        if new:
            self._recovered = asyncio.get_running_loop().create_future()
        if self._fallback:
            self._fallback_until = _clock() + self._fallback_recheck
            # One warning in the limiter's life: each failed recheck would repeat it.
            announce = not self._warned
            self._warned = True
        else:
            announce = new
            if new:
                self._probe = asyncio.create_task(self._reach_redis())
        if not announce:
            # Known already (a caller that was on the wire when it began, or a recheck).
            _logger.debug("Redis rate limiter at %s still unavailable (%s)", self._where, reason)
        elif self._fallback:
            _logger.warning(
                "Redis rate limiter at %s is unavailable (%s); falling back to an in-process "
                "limiter, so each process now enforces the quota on its own. Redis is tried again "
                "every %s s.",
                self._where,
                reason,
                self._fallback_recheck,
            )
        else:
            _logger.warning(
                "Redis rate limiter at %s is unavailable (%s); requests wait for it, each up to "
                "acquire_timeout=%s s",
                self._where,
                reason,
                self._timeout,
            )

    def _on_redis_success(self) -> None:
        recovered = self._recovered
        if recovered is None:
            return
        self._recovered = None
        self._fallback_until = 0.0
        probe, self._probe = self._probe, None
        if probe is not None and probe is not asyncio.current_task():
            probe.cancel()  # a caller that was on the wire got through first
        recovered.set_result(None)
        _logger.info("Redis rate limiter at %s is reachable again; sharing the quota", self._where)

    async def _reach_redis(self) -> None:
        """The outage's probe: ping with capped, jittered exponential backoff until Redis
        answers (:meth:`_round_trip` then resolves the waiters) or nobody waits any more."""
        delays = backoff.expo(factor=_PROBE_FIRST, max_value=_PROBE_MAX)
        next(delays)  # backoff's generators first yield a priming 0
        for delay in delays:
            await self._sleep(backoff.full_jitter(delay))
            try:
                await self._round_trip(self._client.ping())
            except _RedisFailed as exc:
                self._cause = exc.__cause__
            else:
                return

    async def _wait_for_redis(
        self, deadline: float | None, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Wait until the probe reaches Redis; past ``deadline`` raise the outage's error."""
        recovered = self._recovered
        assert recovered is not None  # set together with the probe
        self._waiting += 1
        try:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            # Shielded: a waiter that times out or is cancelled must not cancel the shared future.
            await _bounded(asyncio.shield(recovered), remaining)
        except asyncio.TimeoutError:
            raise RateLimiterUnavailableError(
                f"the shared rate limiter's Redis at {self._where} is still unavailable after "
                f"acquire_timeout={self._timeout} s ({_reason(self._cause)}); nothing was sent"
            ) from self._cause
        finally:
            self._waiting -= 1
            if not self._waiting and self._recovered is recovered:
                # Nobody waits for the probe any more: stop it, so that a limiter left idle
                # leaves no task behind. The next caller tries Redis itself first.
                probe, self._probe = self._probe, None
                self._recovered = None
                if probe is not None:
                    probe.cancel()

    async def _acquire_locally(
        self,
        key: str,
        limit: RateLimit | None,
        deadline: float | None,
        loop: asyncio.AbstractEventLoop,
    ) -> bool:
        """Take a turn from the in-process fallback limiter: True once granted, False if Redis
        answered first (the caller then queues in Redis: a local turn granted after that
        would come on top of the shared quota)."""
        assert self._local is not None  # only reached with fallback on
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        recovered = self._recovered
        turn = loop.create_task(self._local.acquire(key, limit))
        try:
            await asyncio.wait(
                (turn,) if recovered is None else (turn, recovered),
                timeout=remaining,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            turn.cancel()  # no-op once granted
        if recovered is not None and recovered.done():
            return False  # even a turn granted in the same instant: Redis decides from now on
        if not turn.done():
            raise RateLimiterTimeoutError(
                f"{key}: no turn within acquire_timeout={self._timeout} s from the in-process "
                f"fallback limiter (namespace {self.namespace!r}); nothing was sent"
            )
        turn.result()
        return True

    def _check_open(self) -> None:
        if self._closed:
            raise RateLimiterUnavailableError(f"{self!r} is closed")


if sys.version_info >= (3, 11):

    async def _bounded(awaitable: Awaitable[_T], timeout: float | None) -> _T:
        # asyncio.timeout costs one timer handle; wait_for would wrap a task around every call.
        async with asyncio.timeout(timeout):
            return await awaitable

else:  # pragma: no cover - Python 3.10

    async def _bounded(awaitable: Awaitable[_T], timeout: float | None) -> _T:
        return await asyncio.wait_for(awaitable, timeout)


def _reason(cause: BaseException | None) -> str:
    return "unknown error" if cause is None else f"{type(cause).__name__}: {cause}"


def _positive(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _redact(url: str) -> str:
    """``url`` with its password, in the authority or the query string (redis-py reads both),
    replaced by ``***``, for messages and logs."""
    unparseable = "<unparseable Redis URL>"
    try:
        parts = urlsplit(url)
    except ValueError:
        return unparseable
    prefix = f"{parts.scheme}://{parts.netloc}"
    if not url.startswith(prefix) or ("@" in url and "@" not in parts.netloc):
        # Credentials are not where a parser expects them (an unescaped "?" or "#" in a
        # password, say); any attempt to cut them out could show part of them.
        return unparseable
    # Split at the last "@", as redis-py does, so that an unescaped "@" in a password is hidden.
    userinfo, at, host = parts.netloc.rpartition("@")
    netloc = f"{userinfo.partition(':')[0]}:***@{host}" if at and ":" in userinfo else parts.netloc
    path, question, rest = url[len(prefix) :].partition("?")
    query, hash_mark, fragment = rest.partition("#")
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(name.lower() == "password" for name, _ in pairs):
        masked = [(name, "***" if name.lower() == "password" else value) for name, value in pairs]
        query = urlencode(masked, safe="*/")
    return f"{parts.scheme}://{netloc}{path}{question}{query}{hash_mark}{fragment}"


def _describe_client(client: Redis) -> str:
    """Where ``client`` points, from its connection settings, which hold no URL to leak."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
