"""Retry decisions as pure functions: ``retry_delay(policy, attempt, error, elapsed)`` and
``RetryPolicy``'s backoff, with jitter injected so that every expectation is exact."""

from __future__ import annotations

import math
from typing import Any

import pytest

from capillary_points_async import (
    APIError,
    AuthenticationError,
    CapillaryError,
    CustomerNotFoundError,
    GroupTransferMismatchError,
    InvalidIdentifierError,
    InvalidProgramError,
    InvalidRequestError,
    RateLimitedError,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
    TransportError,
)
from capillary_points_async._retry import NO_RETRY, provably_not_applied, retry_delay


def identity(wait: float) -> float:
    return wait


def policy(**changes: Any) -> RetryPolicy:
    arguments: dict[str, Any] = {
        "max_attempts": 4,
        "max_time": 60.0,
        "max_retry_after": 120.0,
        "wait_initial": 0.5,
        "wait_max": 30.0,
        "jitter": identity,
    }
    arguments.update(changes)
    return RetryPolicy(**arguments)


def api(cls: type[APIError], status: int, code: int, retry_after: float | None = None) -> APIError:
    return cls("message", status=status, code=code, request_id="rid", retry_after=retry_after)


RESET = TransportError("connection reset", method="GET", path="v1.1/points/validationcode")
BAD_GATEWAY = api(ServerError, 502, 502)
BUSY = api(ServerError, 200, 521)
RATE_LIMITED = api(RateLimitedError, 429, 429)
RATE_LIMITED_517 = api(RateLimitedError, 200, 517)

# (id, error, attempt, elapsed, policy changes, expected delay or None)
CASES: list[tuple[str, CapillaryError, int, float, dict[str, Any], float | None]] = [
    ("not-found", api(CustomerNotFoundError, 200, 816), 1, 0.0, {}, None),
    ("not-found-v2", api(CustomerNotFoundError, 400, 8015), 1, 0.0, {}, None),
    ("auth", api(AuthenticationError, 401, 401), 1, 0.0, {}, None),
    ("auth-with-retry-after", api(AuthenticationError, 401, 401, 1.0), 1, 0.0, {}, None),
    ("invalid-request", InvalidRequestError("points must be positive"), 1, 0.0, {}, None),
    ("decode", ResponseDecodeError("not JSON", status=200, request_id="rid"), 1, 0.0, {}, None),
    ("program", api(InvalidProgramError, 400, 885), 1, 0.0, {}, None),
    ("identifier", api(InvalidIdentifierError, 400, 8013), 1, 0.0, {}, None),
    ("group", api(GroupTransferMismatchError, 400, 3316), 1, 0.0, {}, None),
    ("unknown-code", api(APIError, 400, 9999), 1, 0.0, {}, None),
    ("bare-capillary-error", CapillaryError("?"), 1, 0.0, {}, None),
    ("transport-1", RESET, 1, 0.0, {}, 0.5),
    ("transport-2", RESET, 2, 1.0, {}, 1.0),
    ("transport-3", RESET, 3, 3.0, {}, 2.0),
    ("transport-last", RESET, 4, 3.0, {}, None),
    ("transport-past-last", RESET, 5, 3.0, {}, None),
    ("server-502", BAD_GATEWAY, 1, 0.0, {}, 0.5),
    ("server-521", BUSY, 2, 0.0, {}, 1.0),
    ("rate-limited-no-header", RATE_LIMITED, 1, 0.0, {}, 0.5),
    ("rate-limited-517", RATE_LIMITED_517, 3, 0.0, {}, 2.0),
    ("retry-after-verbatim", api(RateLimitedError, 429, 429, 7.0), 1, 0.0, {}, 7.0),
    ("retry-after-fraction", api(RateLimitedError, 429, 429, 0.25), 3, 0.0, {}, 0.25),
    ("retry-after-zero", api(RateLimitedError, 429, 429, 0.0), 1, 0.0, {}, 0.0),
    ("retry-after-on-5xx", api(ServerError, 503, 503, 5.0), 1, 0.0, {}, 5.0),
    (
        "retry-after-not-jittered",
        api(RateLimitedError, 429, 429, 7.0),
        1,
        0.0,
        {"jitter": lambda w: w / 100},
        7.0,
    ),
    (
        "retry-after-at-cap",
        api(RateLimitedError, 429, 429, 120.0),
        1,
        0.0,
        {"max_time": 600.0},
        120.0,
    ),
    (
        "retry-after-over-cap",
        api(RateLimitedError, 429, 429, 120.5),
        1,
        0.0,
        {"max_time": 600.0},
        None,
    ),
    ("retry-after-hour", api(RateLimitedError, 429, 429, 3600.0), 1, 0.0, {"max_time": 1e6}, None),
    ("retry-after-last-attempt", api(RateLimitedError, 429, 429, 1.0), 4, 0.0, {}, None),
    ("retry-after-past-max-time", api(RateLimitedError, 429, 429, 30.0), 1, 30.0, {}, None),
    ("retry-after-within-max-time", api(RateLimitedError, 429, 429, 30.0), 1, 29.9, {}, 30.0),
    ("backoff-reaches-max-time", RESET, 1, 59.5, {}, None),
    ("backoff-within-max-time", RESET, 1, 59.4, {}, 0.5),
    ("elapsed-already-over", RESET, 1, 61.0, {}, None),
    ("single-attempt", RESET, 1, 0.0, {"max_attempts": 1}, None),
    ("jitter-applied", RESET, 2, 0.0, {"jitter": lambda w: w / 4}, 0.25),
]


@pytest.mark.parametrize(
    ("error", "attempt", "elapsed", "changes", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_retry_delay(
    error: CapillaryError,
    attempt: int,
    elapsed: float,
    changes: dict[str, Any],
    expected: float | None,
) -> None:
    assert retry_delay(policy(**changes), attempt, error, elapsed) == expected


@pytest.mark.parametrize(
    ("wait_initial", "wait_max", "waits"),
    [
        (0.5, 30.0, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]),
        (1.0, 5.0, [1.0, 2.0, 4.0, 5.0, 5.0]),
        (0.1, 0.3, [0.1, 0.2, 0.3, 0.3]),
        (2.0, 1.0, [1.0, 1.0]),
    ],
)
def test_backoff_doubles_from_wait_initial_and_caps_at_wait_max(
    wait_initial: float, wait_max: float, waits: list[float]
) -> None:
    retry = policy(wait_initial=wait_initial, wait_max=wait_max, max_attempts=50, max_time=1e9)
    attempts = range(1, len(waits) + 1)
    assert [retry.backoff_wait(n) for n in attempts] == pytest.approx(waits)
    assert [retry_delay(retry, n, RESET, 0.0) for n in attempts] == pytest.approx(waits)


def test_backoff_stays_capped_for_very_late_attempts() -> None:
    retry = policy(max_attempts=10_000, max_time=1e9)
    assert retry.backoff_wait(2_000) == 30.0
    assert retry_delay(retry, 2_000, RESET, 0.0) == 30.0


def test_jitter_receives_the_unjittered_wait() -> None:
    seen: list[float] = []

    def jitter(wait: float) -> float:
        seen.append(wait)
        return 0.0

    retry = policy(jitter=jitter)
    assert [retry_delay(retry, n, RESET, 0.0) for n in (1, 2, 3)] == [0.0, 0.0, 0.0]
    assert seen == [0.5, 1.0, 2.0]


def test_jitter_is_not_called_when_the_server_says_how_long() -> None:
    def jitter(wait: float) -> float:
        raise AssertionError("jitter must not touch a server's Retry-After")

    assert retry_delay(policy(jitter=jitter), 1, api(RateLimitedError, 429, 429, 3.0), 0.0) == 3.0


def test_default_full_jitter_stays_within_zero_and_the_wait() -> None:
    retry = RetryPolicy(max_attempts=10, max_time=1e9)
    for attempt, wait in ((1, 0.5), (3, 2.0), (9, 30.0)):
        delays = [retry_delay(retry, attempt, RESET, 0.0) for _ in range(300)]
        assert all(d is not None and 0.0 <= d <= wait for d in delays)
        assert len(set(delays)) > 1  # really jittered, not the bare wait
        assert max(d for d in delays if d is not None) > wait / 2


def test_defaults_are_the_designed_ones() -> None:
    retry = RetryPolicy()
    assert (retry.max_attempts, retry.max_time, retry.max_retry_after) == (4, 60.0, 120.0)
    assert (retry.wait_initial, retry.wait_max) == (0.5, 30.0)


def test_no_retry_policy_never_retries() -> None:
    assert NO_RETRY.max_attempts == 1
    for error in (RESET, BAD_GATEWAY, RATE_LIMITED, api(RateLimitedError, 429, 429, 1.0)):
        assert retry_delay(NO_RETRY, 1, error, 0.0) is None


def test_retryable_flags() -> None:
    assert RESET.retryable is True
    assert BAD_GATEWAY.retryable is True
    assert RATE_LIMITED.retryable is True
    assert api(APIError, 400, 9999).retryable is False
    assert ResponseDecodeError("x").retryable is False


BAD_NUMBERS = [0, 0.0, -1, -0.5, math.nan, math.inf, True, "60", None]


@pytest.mark.parametrize("field", ["max_time", "max_retry_after", "wait_initial", "wait_max"])
@pytest.mark.parametrize("value", BAD_NUMBERS, ids=repr)
def test_invalid_durations_are_rejected(field: str, value: Any) -> None:
    with pytest.raises(InvalidRequestError, match=field):
        RetryPolicy(**{field: value})


@pytest.mark.parametrize("value", [0, -1, True, False, 1.5, 2.0, "3", None], ids=repr)
def test_invalid_max_attempts_are_rejected(value: Any) -> None:
    with pytest.raises(InvalidRequestError, match="max_attempts"):
        RetryPolicy(max_attempts=value)


@pytest.mark.parametrize(
    "changes",
    [{"max_attempts": 1}, {"max_time": 0.001}, {"wait_initial": 1e-6, "wait_max": 1e-6}],
)
def test_small_valid_values_are_accepted(changes: dict[str, Any]) -> None:
    retry = RetryPolicy(**changes)
    for name, value in changes.items():
        assert getattr(retry, name) == value


@pytest.mark.parametrize("jitter", [None, 0.5, "full"])
def test_non_callable_jitter_is_rejected(jitter: Any) -> None:
    with pytest.raises(InvalidRequestError, match="jitter"):
        RetryPolicy(jitter=jitter)


def test_policies_are_frozen() -> None:
    retry = RetryPolicy()
    with pytest.raises(AttributeError):
        retry.max_attempts = 10  # type: ignore[misc]


# --------------------------------------------------------------------------- non-idempotent

NOT_APPLIED = [
    TransportError("refused", connect_failed=True),
    RateLimitedError("slow down", status=429, retry_after=1.0),
    RateLimitedError("rate limit exceeded", status=200, code=517),
    ServerError("Multiple actions are running for the same customer", status=200, code=521),
]
MAYBE_APPLIED = [
    TransportError("timed out after 30s"),
    TransportError("reset after the request was written", connect_failed=False),
    ServerError("bad gateway", status=502, code=502),
    ServerError("internal error", status=500, code=500),
    ResponseDecodeError("answer is not JSON", status=200, retryable=True),
]


@pytest.mark.parametrize("error", NOT_APPLIED, ids=repr)
def test_an_endpoint_that_moves_points_is_retried_when_the_server_provably_did_nothing(
    error: CapillaryError,
) -> None:
    assert provably_not_applied(error)
    assert retry_delay(policy(), 1, error, 0.0, idempotent=False) is not None


@pytest.mark.parametrize("error", MAYBE_APPLIED, ids=repr)
def test_an_endpoint_that_moves_points_is_never_resent_when_it_may_have_been_applied(
    error: CapillaryError,
) -> None:
    assert not provably_not_applied(error)
    assert retry_delay(policy(), 1, error, 0.0, idempotent=False) is None
    # the same failure of an endpoint that may be re-sent is retried
    assert retry_delay(policy(), 1, error, 0.0, idempotent=True) is not None
