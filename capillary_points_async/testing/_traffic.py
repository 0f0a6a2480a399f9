"""Endpoint keys, the gateway's rate limiting, and the record of what arrived.

Capillary counts requests per API key over a window (API-NOTES.md, "Rate limits"). The sandbox
counts them where a gateway would: at arrival. So a client that sent its requests evenly spaced
but had them bunched on the way (a connection handshake, a slow hop) gets a 429 here as it
would in production.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from typing import TypeAlias, TypeVar

import attrs

from .. import _endpoints as declared
from ..errors import InvalidRequestError

__all__ = [
    "ENDPOINTS",
    "IS_REDEEMABLE",
    "IS_TRANSFERRABLE",
    "REDEEM",
    "TRANSFER",
    "VALIDATION_CODE",
    "RateLimitRule",
    "SlidingWindow",
    "Stats",
    "endpoint_key",
    "max_in_window",
    "per_endpoint",
]

# The endpoint keys, read from the library's declarations so that the sandbox serves what the
# client calls (and the spellings it accepts) without a list of its own.
VALIDATION_CODE = declared.VALIDATION_CODE.key
"""``"v1.1/points/validationcode"``: the key of :meth:`FakeCapillary.arrivals` and the like."""
IS_TRANSFERRABLE = declared.IS_TRANSFERRABLE.key
"""``"v2/points/isTransferrable"`` (the sandbox also serves the one-r ``isTransferable``)."""
IS_REDEEMABLE = declared.IS_REDEEMABLE.key
"""``"v1.1/points/isredeemable"``."""
REDEEM = declared.REDEEM.key
"""``"v1.1/points/redeem"``."""
TRANSFER = declared.TRANSFER.key
"""``"v2/points/transfer"``."""
ENDPOINTS = tuple(endpoint.key for endpoint in declared.ENDPOINTS)
"""Every endpoint key the sandbox serves, in the library's order."""

T = TypeVar("T")


def endpoint_key(path: str) -> str:
    """The endpoint key of a path (``/v2/points/isTransferable`` -> ``v2/points/isTransferrable``).

    Raises:
        ValueError: the path is not one of the sandbox's endpoints.
    """
    try:
        return declared.canonical_key(path.strip("/"))
    except InvalidRequestError:
        expected = f"expected one of {ENDPOINTS} or '*'"
        raise ValueError(f"unknown endpoint {path!r}; {expected}") from None


def per_endpoint(spec: object, coerce: Callable[[object], T]) -> dict[str, T]:
    """Spread a setting over the endpoints: one value for all, or a mapping from endpoint
    keys to values in which ``"*"`` stands for every endpoint not named."""
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        return dict.fromkeys(ENDPOINTS, coerce(spec))
    default = spec.get("*")
    named = {endpoint_key(str(key)): value for key, value in spec.items() if key != "*"}
    chosen = {key: named.get(key, default) for key in ENDPOINTS}
    return {key: coerce(value) for key, value in chosen.items() if value is not None}


def _positive_int(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be a whole number >= 1, got {value!r}")


def _positive_finite(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{attribute.name} must be a positive number of seconds, got {value!r}")


@attrs.frozen
class RateLimitRule:
    """The gateway admits at most ``limit`` requests in any ``per`` seconds.

    Requests it answers 429 do not use up the quota, so a client that backs off for the
    ``Retry-After`` it was given gets through.
    """

    limit: int = attrs.field(validator=_positive_int)
    per: float = attrs.field(default=60.0, validator=_positive_finite)

    @classmethod
    def coerce(cls, value: object) -> RateLimitRule:
        """Accept ``(limit, per)`` tuples wherever a rule is expected."""
        if isinstance(value, cls):
            return value
        if isinstance(value, tuple) and len(value) == 2:
            return cls(*value)
        raise TypeError(f"expected RateLimitRule or (limit, per), got {value!r}")


#: What ``rate_limits`` accepts for one endpoint.
RateLimitValue: TypeAlias = "RateLimitRule | tuple[int, float]"


class SlidingWindow:
    """A sliding log of admitted arrival times: exact, and cheap at sandbox rates."""

    __slots__ = ("_admitted", "rule")

    def __init__(self, rule: RateLimitRule) -> None:
        self.rule = rule
        self._admitted: deque[float] = deque()

    def admit(self, now: float) -> int | None:
        """Admit a request arriving at ``now``: None if it fits the window, otherwise the
        whole seconds until the oldest admitted request leaves it (the ``Retry-After``)."""
        horizon = now - self.rule.per
        while self._admitted and self._admitted[0] <= horizon:
            self._admitted.popleft()
        if len(self._admitted) < self.rule.limit:
            self._admitted.append(now)
            return None
        return max(1, math.ceil(self._admitted[0] + self.rule.per - now))


def max_in_window(times: Iterable[float], window: float) -> int:
    """The most of ``times`` that fall in any window ``(t - window, t]``.

    The same half-open window :class:`SlidingWindow` enforces, so
    ``max_in_window(fake.arrivals(key), per) <= limit`` says a client never exceeded the quota.
    """
    ordered = sorted(times)
    best = start = 0
    for end, moment in enumerate(ordered):
        while ordered[start] <= moment - window:
            start += 1
        best = max(best, end - start + 1)
    return best


class Stats:
    """What the sandbox saw and answered, per endpoint key.

    Attributes:
        requests: arrivals per endpoint, including the ones answered 429 or faulted.
        responses: responses per ``(endpoint, HTTP status)``.
        resets: connections the sandbox dropped without answering, per endpoint (the
            ``reset_rate`` ones, before the request was carried out, and the
            ``drop_after_apply_rate`` ones, after).
        token_requests: OAuth token requests (``v3/oauth/token/generate``), answered or
            refused; not a points endpoint, so counted apart from ``requests``.
    """

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.responses: Counter[tuple[str, int]] = Counter()
        self.resets: Counter[str] = Counter()
        self.token_requests = 0
        # array('d') holds a million arrivals in 8 MB, a list of floats needs four times that.
        self._arrivals: dict[str, array[float]] = {key: array("d") for key in ENDPOINTS}

    def record_arrival(self, key: str, now: float) -> int:
        """Log an arrival; returns its index among the endpoint's arrivals."""
        self.requests[key] += 1
        log = self._arrivals[key]
        log.append(now)
        return len(log) - 1

    def arrivals(self, endpoint: str | None = None) -> list[float]:
        """Arrival times (the server's clock) of one endpoint, or of all, in order."""
        if endpoint is not None:
            return list(self._arrivals[endpoint_key(endpoint)])
        return sorted(moment for log in self._arrivals.values() for moment in log)

    def by_status(self, endpoint: str | None = None) -> Counter[int]:
        """Responses per HTTP status, of one endpoint or of all."""
        wanted = None if endpoint is None else endpoint_key(endpoint)
        counts: Counter[int] = Counter()
        for (key, status), count in self.responses.items():
            if wanted is None or key == wanted:
                counts[status] += count
        return counts
