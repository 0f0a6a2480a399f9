"""Retry decisions as small pure functions (openai-python's habit), with backoff's
exponential wait generator and full jitter.

The loop that uses them lives in the client, which owns the clock and the sleep; here is only
"should this error be retried, and after how long".
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import attrs
import backoff

from ._validate import number, number_field, whole_number_field
from .errors import (
    APIError,
    CapillaryError,
    InvalidRequestError,
    RateLimitedError,
    ServerError,
    TransportError,
)

__all__ = [
    "RetryBudget",
    "RetryPolicy",
    "maybe_applied",
    "provably_not_applied",
    "retry_delay",
]


_seconds = number_field("RetryPolicy", unit="of seconds")


def _callable(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not callable(value):
        raise InvalidRequestError(f"RetryPolicy.{attribute.name} must be callable, got {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """When and how long to retry.

    Retried: transport errors and timeouts, HTTP 429 and v1.1 code 517, HTTP 5xx and v2 code
    521, and a 2xx body that is not JSON at all (cut short on the way). Never: other 4xx, 401,
    errors inside an envelope that name the request's fault, and answers of the wrong shape.

    Args:
        max_attempts: attempts in all, the first included (1 disables retrying).
        max_time: total seconds one call may take, waits included; a retry that could not
            start within it is not made, and the last error is raised at once.
        max_retry_after: the longest ``Retry-After`` honoured. A server asking for more fails
            the call at once instead of parking it (a reset header can say "an hour"); the
            endpoint's shared cooldown then lasts this long. A call that meets a cooldown
            with more left than this, or than what remains of its ``max_time``, fails at once
            with :class:`RateLimitedError` whose ``retry_after`` says how long is left.
        wait_initial: the first backoff wait before jitter, in seconds; it doubles per retry.
        wait_max: the cap of one backoff wait before jitter.
        jitter: maps a wait to the one used; the default draws uniformly from ``[0, wait]``
            ("full jitter") so that many clients failing together do not retry together.
        budget_ratio: retries may add at most this share of the calls made in the last
            ``budget_window`` seconds (plus ``budget_min_retries``), so a failing upstream
            gets fewer requests, not more; past it a call fails fast with its last error.
            None turns the budget off.
        budget_window: the budget's sliding window in seconds.
        budget_min_retries: retries always allowed per window, so a quiet client can retry.
    """

    max_attempts: int = attrs.field(default=4, validator=whole_number_field("RetryPolicy"))
    max_time: float = attrs.field(default=60.0, validator=_seconds)
    max_retry_after: float = attrs.field(default=120.0, validator=_seconds)
    wait_initial: float = attrs.field(default=0.5, validator=_seconds)
    wait_max: float = attrs.field(default=30.0, validator=_seconds)
    jitter: Callable[[float], float] = attrs.field(
        default=backoff.full_jitter, repr=False, validator=_callable
    )
    budget_ratio: float | None = attrs.field(default=0.2)
    budget_window: float = attrs.field(default=10.0, validator=_seconds)
    budget_min_retries: int = attrs.field(
        default=10, validator=whole_number_field("RetryPolicy", minimum=0)
    )

    def __attrs_post_init__(self) -> None:
        if self.budget_ratio is not None:
            number(self.budget_ratio, "RetryPolicy.budget_ratio (or None)", zero=True)

    def backoff_wait(self, attempt: int) -> float:
        """The un-jittered wait after failed attempt number ``attempt`` (1-based)."""
        waits = backoff.expo(base=2, factor=self.wait_initial, max_value=self.wait_max)
        # backoff's generators first yield a priming 0, then the sequence proper.
        return next(itertools.islice(waits, attempt, None))


NO_RETRY = RetryPolicy(max_attempts=1, budget_ratio=None)


class RetryBudget:
    """Counts calls and retries over a sliding window kept as a ring of slots, so that both
    bookkeeping steps cost O(1) on the hot path (Finagle's retry budget, in small)."""

    __slots__ = ("_calls", "_current", "_minimum", "_ratio", "_retries", "_slot_length")

    _SLOTS = 10

    def __init__(self, ratio: float, window: float, minimum: int) -> None:
        self._ratio = ratio
        self._minimum = minimum
        self._slot_length = window / self._SLOTS
        self._calls = [0] * self._SLOTS
        self._retries = [0] * self._SLOTS
        self._current = 0

    def _slot(self, now: float) -> int:
        slot = int(now // self._slot_length)
        if slot != self._current:
            # Clear the slots the clock skipped since the last event (all of them after a
            # quiet spell longer than the window).
            for stale in range(max(self._current + 1, slot - self._SLOTS + 1), slot + 1):
                self._calls[stale % self._SLOTS] = 0
                self._retries[stale % self._SLOTS] = 0
            self._current = slot
        return slot % self._SLOTS

    def record_call(self, now: float) -> None:
        """Count a call's first attempt."""
        self._calls[self._slot(now)] += 1

    def try_retry(self, now: float) -> bool:
        """Take a retry from the budget; False when the window's budget is spent."""
        index = self._slot(now)
        if sum(self._retries) >= self._minimum + self._ratio * sum(self._calls):
            return False
        self._retries[index] += 1
        return True


def provably_not_applied(error: CapillaryError) -> bool:
    """Whether ``error`` proves the server did not act on the request: no connection was
    made, the quota refused it (429, 517), or v2 answered 521 "multiple actions are running",
    an explicit refusal. A timeout, a reset after sending or any other 5xx prove nothing
    (urllib3's split of connect from read errors)."""
    if isinstance(error, TransportError):
        return error.connect_failed
    return isinstance(error, RateLimitedError) or (
        isinstance(error, ServerError) and error.code == 521
    )


def maybe_applied(error: CapillaryError) -> bool:
    """Whether the server may have acted on a request that failed with ``error``: anything
    but an answer (a refusal or an error code says it did not) or a proof that it did not."""
    if provably_not_applied(error):
        return False
    return not isinstance(error, APIError) or isinstance(error, ServerError)


def retry_delay(
    policy: RetryPolicy,
    attempt: int,
    error: CapillaryError,
    elapsed: float,
    *,
    idempotent: bool = True,
) -> float | None:
    """Seconds to wait before the next attempt, or None to give up and raise ``error``.

    ``attempt`` is the number of the attempt that just failed; ``elapsed`` the seconds since
    the call began; ``idempotent`` the endpoint's declaration: one that is not is retried
    only when :func:`provably_not_applied`. A server's ``Retry-After`` replaces the backoff
    wait; past ``max_retry_after``, or past the call's ``max_time``, the call fails fast.
    """
    if not getattr(error, "retryable", False) or attempt >= policy.max_attempts:
        return None
    if not idempotent and not provably_not_applied(error):
        return None
    server_wait = error.retry_after if isinstance(error, APIError) else None
    if server_wait is not None:
        if server_wait > policy.max_retry_after:
            return None
        delay = server_wait
    else:
        delay = policy.jitter(policy.backoff_wait(attempt))
    if elapsed + delay >= policy.max_time:
        return None
    return delay
