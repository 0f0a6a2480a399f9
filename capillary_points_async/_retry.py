"""Retry decisions as small pure functions (openai-python's habit), with backoff's
exponential wait generator and full jitter.

The loop that uses them lives in the client, which owns the clock and the sleep; here is only
"should this error be retried, and after how long".
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import attrs
import backoff

from .errors import APIError, CapillaryError, InvalidRequestError

__all__ = ["RetryPolicy", "retry_delay"]


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not value > 0
        or not math.isfinite(value)
    ):
        raise InvalidRequestError(
            f"RetryPolicy.{attribute.name} must be a positive number, got {value!r}"
        )


def _attempts(_: object, __: object, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequestError(
            f"RetryPolicy.max_attempts must be a whole number >= 1, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """When and how long to retry.

    Retried: transport errors and timeouts, HTTP 429 and v1.1 code 517, HTTP 5xx and v2 code
    521. Never: other 4xx, 401, and errors inside an envelope that name the request's fault.

    Args:
        max_attempts: attempts in all, the first included (1 disables retrying).
        max_time: total seconds one call may take, waits included; a retry that could not
            start within it is not made, and the last error is raised at once.
        max_retry_after: the longest ``Retry-After`` honoured. A server asking for more fails
            the call at once instead of parking it (a reset header can say "an hour").
        wait_initial: the first backoff wait before jitter, in seconds; it doubles per retry.
        wait_max: the cap of one backoff wait before jitter.
        jitter: maps a wait to the one used; the default draws uniformly from ``[0, wait]``
            ("full jitter") so that many clients failing together do not retry together.
    """

    max_attempts: int = attrs.field(default=4, validator=_attempts)
    max_time: float = attrs.field(default=60.0, validator=_positive)
    max_retry_after: float = attrs.field(default=120.0, validator=_positive)
    wait_initial: float = attrs.field(default=0.5, validator=_positive)
    wait_max: float = attrs.field(default=30.0, validator=_positive)
    jitter: Callable[[float], float] = attrs.field(default=backoff.full_jitter, repr=False)

    def backoff_wait(self, attempt: int) -> float:
        """The un-jittered wait after failed attempt number ``attempt`` (1-based)."""
        waits = backoff.expo(base=2, factor=self.wait_initial, max_value=self.wait_max)
        # backoff's generators first yield a priming 0, then the sequence proper.
        return next(itertools.islice(waits, attempt, None))


NO_RETRY = RetryPolicy(max_attempts=1)


def retry_delay(
    policy: RetryPolicy, attempt: int, error: CapillaryError, elapsed: float
) -> float | None:
    """Seconds to wait before the next attempt, or None to give up and raise ``error``.

    ``attempt`` is the number of the attempt that just failed; ``elapsed`` the seconds since
    the call began. A server's ``Retry-After`` replaces the backoff wait; past
    ``max_retry_after``, or past the call's ``max_time``, the call fails fast.
    """
    if not getattr(error, "retryable", False) or attempt >= policy.max_attempts:
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
