"""Outages: an endpoint whose calls fail at the transport or with 5xx after all their retries
is taken as down, until one of its calls is answered again.

While an endpoint is down (DESIGN.md, "Bulk runs that last days"):

* a single call fails at once with a copy of the error that took it down, except one call
  now and then (the probe, with backoff from 1 s to 30 s between probes), which goes through:
  a web request must not hang on an outage, and someone must try the endpoint again;
* a bulk run (``*_many(max_outage=...)``) pauses instead of failing its inputs: one input at a
  time probes, on the same backoff, the others wait; when the probe is answered they all go
  on. An input fails only once the outage has lasted ``max_outage`` seconds.

This is a circuit breaker (closed, open, half-open with one trial call). No library was taken
for it: the breaker serves two kinds of callers, those that fail fast and those that wait, and
its state is a few numbers and an event per endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from typing import Final

import attrs
import backoff

from .errors import APIError, CapillaryError, ServerError, TransportError

__all__ = ["Outage", "Outages", "is_outage_error"]

_PROBE_WAIT_INITIAL: Final = 1.0
_PROBE_WAIT_MAX: Final = 30.0


def is_outage_error(error: CapillaryError) -> bool:
    """Whether ``error`` says the endpoint is down rather than that this request was wrong:
    no connection, a timeout or reset, or a 5xx other than v2's 521 (a busy customer)."""
    if isinstance(error, TransportError):
        return True
    return isinstance(error, ServerError) and error.status >= 500 and error.code != 521


def _probe_wait(failed_probes: int) -> float:
    """Seconds from a failed probe to the next: 1, 2, 4 ... 30 (backoff's expo, whose first
    value is a priming 0)."""
    waits = backoff.expo(base=2, factor=_PROBE_WAIT_INITIAL, max_value=_PROBE_WAIT_MAX)
    return float(next(itertools.islice(waits, failed_probes + 1, None)))


@attrs.frozen
class Outage:
    """What a client knows of an endpoint it takes as down (``client.outage(endpoint)``): a
    snapshot, taken when asked.

    Attributes:
        endpoint: the endpoint's key, e.g. ``"v2/points/isTransferrable"``.
        error: the last error that said it is down (a :class:`TransportError`, or a
            :class:`ServerError` with a 5xx).
        down_for: seconds since it went down.
        failed_probes: probes sent since, none of them answered.
        next_probe_in: seconds until the next probe may go (0: due, or on its way).
    """

    endpoint: str
    error: CapillaryError
    down_for: float
    failed_probes: int
    next_probe_in: float


class _Down:
    __slots__ = ("changed", "error", "failed_probes", "probe_at", "probing", "since", "time")

    def __init__(self, error: CapillaryError, now: float) -> None:
        # The loop's clock, kept to tell how long the outage has lasted when asked outside
        # the loop (stats read after a run); without a loop, asyncio's default clock.
        try:
            self.time = asyncio.get_running_loop().time
        except RuntimeError:
            self.time = time.monotonic
        self.since = now
        self.error = error
        self.failed_probes = 0
        self.probe_at = now + _probe_wait(0)
        self.probing = False
        # Set (and replaced) when the probe ends or the endpoint is up: waiters look again.
        self.changed = asyncio.Event()

    def probe_ended(self) -> None:
        self.probing = False
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class Outages:
    """The down endpoints of one client, keyed like the limiter. While nothing is down every
    check is one lookup in an empty dict."""

    __slots__ = ("_down", "_ended_time", "count")

    def __init__(self) -> None:
        self._down: dict[str, _Down] = {}
        #: Outages begun, over all endpoints.
        self.count = 0
        self._ended_time = 0.0

    @property
    def down_time(self) -> float:
        """Seconds endpoints have been down, summed over endpoints; an outage still going
        counts up to now."""
        going = sum(down.time() - down.since for down in self._down.values())
        return self._ended_time + going

    def view(self, key: str) -> Outage | None:
        """A snapshot of ``key``'s outage, or None while it is up."""
        down = self._down.get(key)
        if down is None:
            return None
        now = down.time()
        return Outage(
            endpoint=key,
            error=down.error,
            down_for=now - down.since,
            failed_probes=down.failed_probes,
            next_probe_in=max(0.0, down.probe_at - now),
        )

    def down_since(self, key: str) -> float | None:
        """Loop time at which ``key`` went down, or None while it is up."""
        down = self._down.get(key)
        return down.since if down is not None else None

    def admit(self, key: str, now: float) -> bool:
        """Before a single call: return when it may be sent, True if it goes as the probe;
        else raise, at once, the error that took the endpoint down."""
        down = self._down.get(key)
        if down is None:
            return False
        if not down.probing and now >= down.probe_at:
            down.probing = True
            return True
        raise _still_down(key, down, now)

    async def wait(self, key: str, max_outage: float) -> tuple[CapillaryError | None, bool]:
        """Before a bulk input is sent: ``(None, probe)`` when it may go (the endpoint is up,
        or this input is the probe), after waiting as long as need be; ``(error, False)`` to
        fail it with once the outage has lasted ``max_outage`` seconds."""
        loop = asyncio.get_running_loop()
        while True:
            down = self._down.get(key)
            if down is None:
                return None, False
            now = loop.time()
            if now - down.since >= max_outage:
                return _still_down(key, down, now), False
            if not down.probing and now >= down.probe_at:
                down.probing = True
                return None, True
            # Look again when the probe ends or the endpoint is up, when the next probe is
            # due, or when the outage runs past max_outage.
            until = down.since + max_outage
            if not down.probing:
                until = min(until, down.probe_at)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(down.changed.wait(), until - now)

    def up(self, key: str) -> None:
        """A call to ``key`` was answered: the endpoint is up, and every waiter goes on."""
        down = self._down.pop(key, None)
        if down is not None:
            self._ended_time += down.time() - down.since
            down.changed.set()

    def settle(self, key: str, error: CapillaryError, now: float, *, probe: bool) -> None:
        """Record how a failed call to ``key`` ended (``probe``: whether it was the probe).
        An answer that is no outage brings the endpoint up; an outage error takes it down, or,
        from the probe, pushes the next probe back; anything else says nothing of the
        endpoint and only frees the probe's turn."""
        if isinstance(error, APIError) and not is_outage_error(error):
            self.up(key)
            return
        down = self._down.get(key)
        if not is_outage_error(error):
            if probe:
                self.abandon(key)
            return
        if down is None:
            self._down[key] = _Down(error, now)
            self.count += 1
            return
        down.error = error
        if probe:
            down.failed_probes += 1
            down.probe_at = now + _probe_wait(down.failed_probes)
            down.probe_ended()

    def abandon(self, key: str) -> None:
        """The probe was cancelled: the next caller probes."""
        down = self._down.get(key)
        if down is not None:
            down.probe_ended()


def _still_down(key: str, down: _Down, now: float) -> CapillaryError:
    """A new error of the kind that took ``key`` down, for a call that was not sent."""
    last = down.error
    message = f"{key} is down (for {now - down.since:.1f} s); last error: {last}"
    if isinstance(last, ServerError):
        return ServerError(message, status=last.status, code=last.code, request_id=last.request_id)
    return TransportError(message, connect_failed=True)  # nothing was sent
