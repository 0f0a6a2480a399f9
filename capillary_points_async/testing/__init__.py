"""A local Capillary for tests: a faithful sandbox of the points endpoints.

:class:`FakeCapillary` is a real aiohttp server on loopback, like stripe-mock or moto. It
answers every endpoint the client declares (:data:`ENDPOINTS`: ``v1.1/points/validationcode``,
``v2/points/isTransferrable``, ``v1.1/points/isredeemable``, ``v1.1/points/redeem`` and
``v2/points/transfer``) with the documented envelopes, error codes and HTTP statuses, and
keeps state: redemptions take points and use up their validation code, transfers move points.
It checks Basic credentials (``sandbox`` / ``sandbox`` by default) and, given OAuth clients,
serves tokens; enforces rate limits over a sliding window of arrivals; and injects faults
(latency, resets, HTML 5xx pages, truncated bodies, 429 storms, v2's 521, answers lost after
the request was carried out, outages that refuse connections) reproducibly::

    from capillary_points_async.testing import FakeCapillary, Faults, max_in_window

    async with FakeCapillary(customers=1000, seed=1, rate_limits=(100, 1.0)) as fake:
        ...  # point the client at fake.url
        fake.set_faults(Faults(error_rate=1.0, for_requests=3))  # three 502/503s, then healthy
        assert max_in_window(fake.arrivals("v2/points/isTransferrable"), 1.0) <= 100
        fake.state.otp_for("919777785205")     # the validation code "sent by SMS", if any
        fake.state.find("mobile", "919777785205").transaction_points   # after redemptions

Known customers: the documentation's samples (:data:`SEEDED_CUSTOMERS`: 919777785205,
919777785206 and 919777785207 in program 973) and ``customers`` generated ones
(:func:`generate_customers` documents their identifiers). Program 973 is a plain program,
974 a group one.

With pytest and pytest-asyncio installed, the ``fake_capillary`` and ``capillary_client``
fixtures are available without any import; ``@pytest.mark.fake_capillary(**kwargs)`` passes
arguments to the sandbox.
"""

from __future__ import annotations

from ._faults import FaultKind, Faults
from ._server import FakeCapillary
from ._state import (
    DEFAULT_PROGRAMS,
    SEEDED_CUSTOMERS,
    OtpScope,
    Program,
    Redeemed,
    SandboxCustomer,
    SandboxState,
    Transferred,
    generate_customers,
    normalize_mobile,
)
from ._traffic import (
    ENDPOINTS,
    IS_REDEEMABLE,
    IS_TRANSFERRABLE,
    REDEEM,
    TRANSFER,
    VALIDATION_CODE,
    RateLimitRule,
    Stats,
    max_in_window,
)

__all__ = [
    "DEFAULT_PROGRAMS",
    "ENDPOINTS",
    "IS_REDEEMABLE",
    "IS_TRANSFERRABLE",
    "REDEEM",
    "SEEDED_CUSTOMERS",
    "TRANSFER",
    "VALIDATION_CODE",
    "FakeCapillary",
    "FaultKind",
    "Faults",
    "OtpScope",
    "Program",
    "RateLimitRule",
    "Redeemed",
    "SandboxCustomer",
    "SandboxState",
    "Stats",
    "Transferred",
    "generate_customers",
    "max_in_window",
    "normalize_mobile",
]
