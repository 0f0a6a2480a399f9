"""The rate algorithm of every limiter backend, written once in Python and once in Lua.

:class:`Bucket` is one endpoint's bucket as pure state (no clock, no I/O; times are whole
microseconds handed in by the caller). The in-process limiter calls it with the event loop's
clock; the Redis limiter runs :data:`LUA`, the same operations transcribed line by line, on the
Redis server's clock. Change one and you must change the other: a test feeds both the same
events and compares what they answer (``tests/redis/test_redis_limiter.py``).

The bucket
----------
A GCRA ("virtual scheduling"): the theoretical arrival time ``tat`` is when the bucket would be
empty. A request conforms once ``now >= tat - tolerance`` (``tolerance = (burst - 1) *
interval``); :meth:`Bucket.reserve` gives the caller the slot ``max(now, tat - tolerance)`` and
moves ``tat`` on by one interval, so concurrent callers get successive slots, first come first
served, instead of racing for one. This is the bucket :class:`~capillary_points_async.RateLimit`
describes (capacity ``burst``, draining at ``RateLimit.rate``): no window of
``per * (1 + safety_margin)`` seconds holds more than ``limit`` slots. The interval is rounded
up to a whole microsecond, so the integer state never drifts.

Adapting to 429s
----------------
A 429 although the proactive limit was respected means the server's quota Q is below the
configured ``limit``. What follows is one rule, argued with numbers:

* **Measure, then settle just under it.** The bucket counts its departures (requests that left
  at their slot) in sub-windows of ``per / 20``. At the first 429 of a cooldown (:meth:`cut`)
  it reads how many left in the last ``per`` seconds, less the one answered 429; every further
  429 reported during that cooldown (:meth:`reject`) takes one more off, since that request
  left but the server did not count it. What remains is what the server accepted: a gateway
  counting a sliding window answers 429 exactly when its window holds Q. (The count's window
  ends when the 429 is reported, one round trip after the server's, so it can only miss
  requests, and the estimate errs low.) The bucket is then sized for Q by the arithmetic of
  ``RateLimit.rate`` with Q for ``limit``: a factor
  ``(Q + 1 - 0.01 - burst) / (limit + 1 - 0.01 - burst)`` of the configured rate. For the
  sandbox's 100 per second with a client told 300 per second (burst 2) that is 97.05/s, at most
  ``floor(2 + 97.05 * 1.02) = 100`` requests in any 1.02 s: the settled rate cannot draw a 429
  from the quota it measured, and uses 97% of it (at 1000 per minute, 98%).
* **Hold, because probing costs more than it gains.** A probe above Q earns a 429 for every
  request in flight and a cooldown of the server's ``Retry-After`` (the sandbox answers at least
  1 s; a gateway with fixed windows, the rest of its window), in which nothing is sent. Against
  a 1 s window that is a whole window lost per probe, so probing every H windows costs ``1/H``
  of the throughput, which at H = 30 is as much as the 3% the settled rate leaves unused. So
  the rate is held for 30 windows after a measured cut, and each cut that measures the same
  quota again (within 5%) doubles the hold, up to 480 windows (8 hours of minute windows, 0.2%).
  Before this rule the hold was 3 windows: the sandbox run had a probe and its 429 every
  6 windows, and kept 81-86% of the quota.
* **Probe in growing steps.** After the hold the rate grows by 1%, 3%, 7%, 15%, ... of the
  settled rate (``1 + 0.01 * (2**w - 1)`` after ``w`` windows): a probe from 3% under Q meets it
  in the second or third window at most a few per cent over, and a quota that was raised (or a
  cut made too deep by a stray 429) is back at the configured rate within 8 windows (from a
  third; 11 from the 5% floor).
* **Blind cut.** With fewer than 10 departures in the window there is no quota to measure: the
  rate is cut to 70% and probed after 3 windows, and the next 429 measures.

Each cut keeps the rate at or under the one it replaces, and at least 5% of the configured rate.
An adaptation expires once its probe is back at the configured rate; a later 429 starts afresh.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._limiting import RateLimit

__all__ = [
    "LUA",
    "ROUNDING_SLACK",
    "SUBWINDOWS",
    "Bucket",
    "interval_us",
    "quota_factor",
    "window_us",
]

# How far below the next whole request the window bound is put (see RateLimit.rate); the gap
# keeps float rounding of times harmless.
ROUNDING_SLACK = 0.01

SUBWINDOWS = 20  # departures are counted per 1/20 of the window
MIN_COUNT = 10  # fewer departures in the window: too few to measure a quota
BLIND_CUT = 0.7
BLIND_HOLD = 3.0  # windows
HOLD = 30.0  # windows
MAX_HOLD = 480.0  # windows
SAME_QUOTA = 0.05  # a quota measured within this share of the last one is the same quota
CREEP = 0.01
FLOOR = 0.05
# Only keeps 2**w finite: 2**30 * CREEP is far past 1 / FLOOR.
MAX_PROBE_WINDOWS = 30.0


def interval_us(limit: RateLimit) -> int:
    """Microseconds between slots at the configured rate, rounded up (never faster)."""
    return math.ceil(1e6 / limit.rate)


def window_us(limit: RateLimit) -> int:
    """The window ``per`` in whole microseconds."""
    return math.ceil(limit.per * 1e6)


def quota_factor(quota: float, limit: int, burst: int) -> float:
    """Share of the configured rate whose windows hold at most ``quota`` (see RateLimit.rate)."""
    return (quota + 1 - ROUNDING_SLACK - burst) / (limit + 1 - ROUNDING_SLACK - burst)


class Adaptation:
    """The last cut: when it came, the factor it settled on, how many windows that is held,
    and the quota it measured (less the 429s reported since; -1 for a blind cut)."""

    __slots__ = ("at", "expires", "hold", "quota", "settled")

    def __init__(self, at: int, settled: float, hold: float, quota: float, per: int) -> None:
        self.at = at
        self.settled = settled
        self.hold = hold
        self.quota = quota
        self.expires = self.at + self._windows_to_recover() * per

    def factor_at(self, now: int, per: int) -> float:
        windows = (now - self.at) / per - self.hold
        if windows <= 0:
            return self.settled
        return min(1.0, self.settled * (1 + CREEP * (2 ** min(windows, MAX_PROBE_WINDOWS) - 1)))

    def _windows_to_recover(self) -> float:
        # The hold, then until 1 + CREEP * (2**w - 1) reaches 1 / settled. Lua 5.1 has no log2,
        # hence log / log(2) in both.
        return self.hold + math.log(1 + (1 / self.settled - 1) / CREEP) / math.log(2)


class Departures:
    """Departures per sub-window of ``per / SUBWINDOWS``, keyed by the sub-window's index."""

    __slots__ = ("_counts", "_width")

    def __init__(self, per: int) -> None:
        self._width = per / SUBWINDOWS
        self._counts: dict[int, int] = {}

    def add(self, moment: int) -> None:
        index = math.floor(moment / self._width)
        counts = self._counts
        count = counts[index] = counts.get(index, 0) + 1
        if count == 1:
            # A new sub-window: forget those that no window reaches any more (bounded state).
            for old in [old for old in counts if old < index - SUBWINDOWS]:
                del counts[old]

    def in_window(self, now: int) -> float:
        """Departures in the ``per`` seconds up to ``now``; of the oldest sub-window, the part
        still inside the window (exact for steady traffic)."""
        position = now / self._width
        index = math.floor(position)
        counts = self._counts
        total = 0.0
        for older in range(index - SUBWINDOWS + 1, index + 1):
            total += counts.get(older, 0)
        return total + counts.get(index - SUBWINDOWS, 0) * (1 - (position - index))


class Bucket:
    """One endpoint's GCRA bucket and its adaptation to 429s; every time is in microseconds.

    Args:
        limit: the configured :class:`~capillary_points_async.RateLimit`.
        adaptive: count departures and adapt to 429s (:meth:`cut` and :meth:`reject`).
    """

    __slots__ = (
        "_departures",
        "adaptation",
        "burst",
        "factor",
        "interval",
        "last_interval",
        "limit",
        "per",
        "quota_limit",
        "tat",
    )

    def __init__(self, limit: RateLimit, *, adaptive: bool = True) -> None:
        self.limit = limit
        self.interval = interval_us(limit)
        self.burst = limit.burst
        self.quota_limit = limit.limit
        self.per = window_us(limit)
        self.tat = 0
        self.last_interval = self.interval  # of the last reservation
        self.adaptation: Adaptation | None = None
        #: The factor as of the last reservation or cut: what ``effective_rate`` reports.
        self.factor = 1.0
        self._departures = Departures(self.per) if adaptive else None

    def factor_at(self, now: int) -> float:
        """Share of the configured rate the bucket drains at, at ``now``."""
        adaptation = self.adaptation
        if adaptation is None:
            return 1.0
        if now >= adaptation.expires:
            self.adaptation = None  # recovered: as the Redis key expires
            return 1.0
        return adaptation.factor_at(now, self.per)

    def reserve(self, now: int) -> int:
        """Take the next slot; return when it is (``now`` or later). A slot at ``now`` is
        counted as a departure at once; a later one only by :meth:`depart`."""
        factor = self.factor = self.factor_at(now)
        interval = self.last_interval = math.ceil(self.interval / factor)
        tolerance = (self.burst - 1) * interval
        tat = max(self.tat, now)
        wait = max(0, tat - tolerance - now)
        self.tat = tat + interval
        if wait == 0:
            self.depart(now)
        return now + wait

    def depart(self, moment: int) -> None:
        """Count a request that left at ``moment``."""
        if self._departures is not None:
            self._departures.add(moment)

    def left_at(self, moment: int) -> None:
        """The caller of the last :meth:`reserve` left at ``moment``, at or after its slot:
        count it, and if it left late (a late timer), go on from then, as a GCRA judging the
        real departure would: lateness costs rate instead of bunching the departures that
        follow. (A no-op on ``tat`` for a punctual departure.) Only for a caller holding the
        only reservation made so far, as the in-process limiter's callers do; the Redis
        limiter hands out many at once and cannot."""
        self.depart(moment)
        self.tat = max(self.tat, moment + self.last_interval)

    def cut(self, now: int) -> None:
        """A 429 (or an exhausted quota) that begins a cooldown: settle under what the server
        accepted in the window before it."""
        if self._departures is None:
            return
        factor = self.factor_at(now)
        previous = self.adaptation
        # The request answered 429 left too, and the server did not count it.
        quota = self._departures.in_window(now) - 1
        if quota >= MIN_COUNT:
            settled = min(factor, quota_factor(quota, self.quota_limit, self.burst))
            hold = HOLD
            if (
                previous is not None
                and previous.quota >= 0
                and abs(quota - previous.quota) <= SAME_QUOTA * previous.quota
            ):
                hold = min(2 * previous.hold, MAX_HOLD)
        else:
            quota, settled, hold = -1, factor * BLIND_CUT, BLIND_HOLD
        self._settle(now, Adaptation(now, max(FLOOR, settled), hold, quota, self.per))

    def reject(self, now: int) -> None:
        """One more 429 during the cooldown a :meth:`cut` began: a request that left and that
        the server did not count, so one fewer accepted."""
        if self._departures is None:
            return
        self.factor_at(now)  # drops an adaptation that has run out
        last = self.adaptation
        if last is None or last.quota < 0:
            return
        quota = last.quota - 1
        settled = max(FLOOR, min(last.settled, quota_factor(quota, self.quota_limit, self.burst)))
        self._settle(now, Adaptation(last.at, settled, last.hold, quota, self.per))

    def _settle(self, now: int, adaptation: Adaptation) -> None:
        self.adaptation = adaptation
        self.factor = adaptation.factor_at(now, self.per)


def _lua_number(value: float) -> str:
    return repr(float(value))


# The same bucket in Lua 5.1 (Redis scripting), function for function; times in microseconds of
# the Redis server's clock. State: KEYS[2] holds tat, KEYS[3] the adaptation (a hash with the
# fields of Adaptation), KEYS[4] the departures (a hash from sub-window index to count). Numbers
# are stored with '%.17g' (every bit of a double) and '%.0f' (every digit of an integer); Redis
# would round a bare Lua number to 14 digits.
LUA = f"""
local SUBWINDOWS, MIN_COUNT = {SUBWINDOWS}, {MIN_COUNT}
local BLIND_CUT, BLIND_HOLD = {_lua_number(BLIND_CUT)}, {_lua_number(BLIND_HOLD)}
local HOLD, MAX_HOLD = {_lua_number(HOLD)}, {_lua_number(MAX_HOLD)}
local SAME_QUOTA, CREEP = {_lua_number(SAME_QUOTA)}, {_lua_number(CREEP)}
local FLOOR, MAX_PROBE_WINDOWS = {_lua_number(FLOOR)}, {_lua_number(MAX_PROBE_WINDOWS)}
local ROUNDING_SLACK = {_lua_number(ROUNDING_SLACK)}
"""
LUA += """
local function exact(value)
    return string.format('%.17g', value)
end

local function quota_factor(quota, limit, burst)
    return (quota + 1 - ROUNDING_SLACK - burst) / (limit + 1 - ROUNDING_SLACK - burst)
end

-- Adaptation: read (nil once it has run out), factor_at, and store. The key's PEXPIRE only
-- frees the memory; 'expires' is what counts, so that the rule depends on `now` alone.
local function adaptation(key, now)
    local a = redis.call('HMGET', key, 'at', 'settled', 'hold', 'quota', 'expires')
    if not a[1] or now >= tonumber(a[5]) then
        return nil
    end
    return {at = tonumber(a[1]), settled = tonumber(a[2]), hold = tonumber(a[3]),
            quota = tonumber(a[4])}
end

local function adapted_factor(a, now, per)
    local windows = (now - a.at) / per - a.hold
    if windows <= 0 then
        return a.settled
    end
    return math.min(1, a.settled * (1 + CREEP * (2 ^ math.min(windows, MAX_PROBE_WINDOWS) - 1)))
end

local function factor_at(key, now, per)
    if per <= 0 then
        return 1
    end
    local a = adaptation(key, now)
    if not a then
        return 1
    end
    return adapted_factor(a, now, per)
end

local function store(key, at, settled, hold, quota, now, per)
    -- Runs out once the probe is back at the configured rate: the hold, then until
    -- 1 + CREEP * (2^w - 1) reaches 1 / settled.
    local windows = hold + math.log(1 + (1 / settled - 1) / CREEP) / math.log(2)
    local expires = at + windows * per
    redis.call('HSET', key, 'at', string.format('%.0f', at), 'settled', exact(settled),
               'hold', exact(hold), 'quota', exact(quota), 'expires', exact(expires))
    redis.call('PEXPIRE', key, math.max(1, math.ceil((expires - now) / 1000)))
end

-- Departures
local function depart(key, moment, now, per)
    local width = per / SUBWINDOWS
    local index = math.floor(moment / width)
    if redis.call('HINCRBY', key, string.format('%.0f', index), 1) == 1 then
        for _, field in ipairs(redis.call('HKEYS', key)) do
            if tonumber(field) < index - SUBWINDOWS then
                redis.call('HDEL', key, field)
            end
        end
    end
    -- No read reaches a sub-window once a window and a sub-window have passed since it (one
    -- more sub-window of slack for departures counted a little ahead of their slot).
    redis.call('PEXPIRE', key, math.ceil((math.max(moment, now) - now + per + 2 * width) / 1000))
end

local function in_window(key, now, per)
    local width = per / SUBWINDOWS
    local position = now / width
    local index = math.floor(position)
    local fields = {}
    for older = index - SUBWINDOWS, index do
        fields[#fields + 1] = string.format('%.0f', older)
    end
    local counts = redis.call('HMGET', key, unpack(fields))
    local total = 0
    for i = 2, #counts do
        total = total + tonumber(counts[i] or 0)
    end
    return total + tonumber(counts[1] or 0) * (1 - (position - index))
end

-- Bucket
local function reserve(tat_key, adapt_key, departures_key, now, base_interval, burst, per,
                       max_wait)
    local factor = factor_at(adapt_key, now, per)
    local interval = math.ceil(base_interval / factor)
    local tolerance = (burst - 1) * interval
    local tat = tonumber(redis.call('GET', tat_key) or 0)
    if tat < now then
        tat = now
    end
    local wait = tat - tolerance - now
    if wait < 0 then
        wait = 0
    end
    if max_wait >= 0 and wait > max_wait then
        return -1, wait, factor
    end
    local new_tat = tat + interval
    -- Once the server clock passes tat a missing key reads the same as the stored one.
    redis.call('SET', tat_key, string.format('%.0f', new_tat), 'PX',
               math.ceil((new_tat - now) / 1000))
    if wait == 0 and per > 0 then
        depart(departures_key, now, now, per)
    end
    return 1, wait, factor
end

local function cut(adapt_key, departures_key, now, per, limit, burst)
    local previous = adaptation(adapt_key, now)
    local factor = 1
    if previous then
        factor = adapted_factor(previous, now, per)
    end
    local quota = in_window(departures_key, now, per) - 1
    local settled, hold
    if quota >= MIN_COUNT then
        settled = math.min(factor, quota_factor(quota, limit, burst))
        hold = HOLD
        if previous and previous.quota >= 0
                and math.abs(quota - previous.quota) <= SAME_QUOTA * previous.quota then
            hold = math.min(2 * previous.hold, MAX_HOLD)
        end
    else
        quota, settled, hold = -1, factor * BLIND_CUT, BLIND_HOLD
    end
    store(adapt_key, now, math.max(FLOOR, settled), hold, quota, now, per)
end

local function reject(adapt_key, now, per, limit, burst)
    local last = adaptation(adapt_key, now)
    if not last or last.quota < 0 then
        return
    end
    local quota = last.quota - 1
    local settled = math.max(FLOOR, math.min(last.settled, quota_factor(quota, limit, burst)))
    store(adapt_key, last.at, settled, last.hold, quota, now, per)
end
"""
