"""Fault injection: what can go wrong between a client and Capillary, on demand.

A request's fate is drawn from a random generator seeded with the sandbox's seed, the endpoint
and the request's index among that endpoint's arrivals. The n-th request to an endpoint thus
meets the same fault in every run, however requests to other endpoints interleave with it.
"""

from __future__ import annotations

import enum
import math
import random
from typing import Any

import attrs

__all__ = ["Fate", "FaultKind", "Faults", "decide"]


class FaultKind(enum.Enum):
    """The ways a request can fail, in the order a share of requests is assigned to them."""

    THROTTLE = "throttle"  # HTTP 429 with Retry-After, from the gateway
    RESET = "reset"  # the connection is dropped without an answer
    ERROR_PAGE = "error_page"  # a 5xx HTML page from a proxy, not JSON
    BUSY = "busy"  # v2's 521 "Multiple actions are running for the same customer"
    TRUNCATE = "truncate"  # a correct answer whose JSON body is cut in half
    DROP_AFTER_APPLY = "drop_after_apply"  # the request is carried out, the answer never sent


def _share(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{attribute.name} must be a share between 0 and 1, got {value!r}")


def _latency(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    bounds = value if isinstance(value, tuple) else (value, value)
    if not (
        len(bounds) == 2
        and all(isinstance(b, (int, float)) and 0 <= b < math.inf for b in bounds)
        and bounds[0] <= bounds[1]
    ):
        raise ValueError(f"latency must be seconds >= 0 or a (low, high) range, got {value!r}")


def _interval(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in value)
        and value[0] <= value[1]  # also False for NaN
    ):
        raise ValueError(f"{attribute.name} must be None or a (start, end) pair, got {value!r}")


def _count(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{attribute.name} must be a whole number >= 0, got {value!r}")


def _server_errors(
    _: object, attribute: attrs.Attribute[tuple[int, ...]], value: tuple[int, ...]
) -> None:
    if not value or not all(isinstance(s, int) and 500 <= s <= 599 for s in value):
        raise ValueError(f"error_statuses must be 5xx statuses, got {value!r}")


@attrs.frozen(kw_only=True)
class Faults:
    """Faults for one endpoint (or, given alone, for every endpoint).

    The ``*_rate`` fields are shares of requests, which the sandbox assigns to at most one
    fault each; they must add up to 1 at most.

    Args:
        latency: seconds added before the sandbox answers (not to its 429s, which the gateway
            sends at once), or a ``(low, high)`` range to draw from.
        throttle_rate: share of requests answered 429 with ``Retry-After: throttle_retry_after``.
        throttle_during: ``(start, end)`` in seconds since the sandbox started: every request
            arriving in it is answered 429, with a ``Retry-After`` that reaches past ``end``.
        throttle_retry_after: the ``Retry-After`` of ``throttle_rate``'s answers, in seconds.
        reset_rate: share of connections dropped without an answer.
        error_rate: share of requests answered by a proxy's HTML error page.
        error_statuses: the statuses of those pages, drawn evenly.
        busy_rate: share of requests answered 521 "Multiple actions are running for the same
            customer". Only v2 documents this answer, so the v1.1 endpoint ignores it.
        truncate_rate: share of answers whose JSON body is cut in half (with a matching
            ``Content-Length``, so only the JSON is broken, not the HTTP framing).
        drop_after_apply_rate: share of requests carried out (a redemption taken, a code
            issued, points moved) whose connection is then dropped without an answer: the
            case in which a client cannot know whether its call took effect.
        outage_during: ``(start, end)`` in seconds since the sandbox started during which the
            whole sandbox is down: it stops listening, so connections are refused (clients
            see a connection failure, proof that nothing reached the server), and open
            connections are closed (a request on its way then, or sent on a kept-alive
            connection before the client saw it close, fails as a reset after sending, as
            with a real host). It takes every endpoint down, so it must be the same
            for all of them (give it in one ``Faults`` or under ``"*"``). Timed on the
            sandbox's clock as the event loop's timers see it: exact with the default clock
            (the loop's time, virtual under looptime). ``for_requests`` does not end it.
        for_requests: apply to the next this many requests per endpoint, then heal. ``None``
            applies until the faults are replaced.
    """

    latency: float | tuple[float, float] = attrs.field(default=0.0, validator=_latency)
    throttle_rate: float = attrs.field(default=0.0, validator=_share)
    throttle_during: tuple[float, float] | None = attrs.field(default=None, validator=_interval)
    throttle_retry_after: int = attrs.field(default=1, validator=_count)
    reset_rate: float = attrs.field(default=0.0, validator=_share)
    error_rate: float = attrs.field(default=0.0, validator=_share)
    error_statuses: tuple[int, ...] = attrs.field(default=(502, 503), validator=_server_errors)
    busy_rate: float = attrs.field(default=0.0, validator=_share)
    truncate_rate: float = attrs.field(default=0.0, validator=_share)
    drop_after_apply_rate: float = attrs.field(default=0.0, validator=_share)
    outage_during: tuple[float, float] | None = attrs.field(default=None, validator=_interval)
    for_requests: int | None = attrs.field(default=None, validator=_count)

    def __attrs_post_init__(self) -> None:
        if sum(share for _, share in self.shares()) > 1 + 1e-9:
            raise ValueError(f"fault shares add up to more than 1: {self!r}")

    @classmethod
    def coerce(cls, value: object) -> Faults:
        """``value`` itself when it is a :class:`Faults`; else a :class:`TypeError`."""
        if not isinstance(value, cls):
            raise TypeError(f"expected Faults, got {value!r}")
        return value

    def shares(self) -> tuple[tuple[FaultKind, float], ...]:
        """Each kind of fault with the share of requests it takes, in the order they are
        drawn."""
        return (
            (FaultKind.THROTTLE, self.throttle_rate),
            (FaultKind.RESET, self.reset_rate),
            (FaultKind.ERROR_PAGE, self.error_rate),
            (FaultKind.BUSY, self.busy_rate),
            (FaultKind.TRUNCATE, self.truncate_rate),
            # Last: the fates that earlier kinds drew for a seed stay as they were.
            (FaultKind.DROP_AFTER_APPLY, self.drop_after_apply_rate),
        )


@attrs.frozen
class Fate:
    """What happens to one request: extra latency, and at most one fault."""

    latency: float = 0.0
    fault: FaultKind | None = None
    status: int = 0  # the status of an error page
    retry_after: int = 0  # the Retry-After of a throttle


def decide(faults: Faults, rng: random.Random, elapsed: float) -> Fate:
    """Draw one request's fate. ``elapsed``: seconds since the sandbox started.

    The draws happen in a fixed order whatever the outcome, so that one fate never depends on
    which branch an earlier one took.
    """
    low, high = faults.latency if isinstance(faults.latency, tuple) else (faults.latency,) * 2
    latency = rng.uniform(low, high) if high > low else low
    draw = rng.random()
    status = rng.choice(faults.error_statuses)
    window = faults.throttle_during
    if window is not None and window[0] <= elapsed < window[1]:
        return Fate(latency, FaultKind.THROTTLE, retry_after=max(1, math.ceil(window[1] - elapsed)))
    for kind, share in faults.shares():
        if draw < share:
            return Fate(latency, kind, status=status, retry_after=faults.throttle_retry_after)
        draw -= share
    return Fate(latency)
