"""asyncio client for Capillary's loyalty points API.

Issues validation codes before points redemption (``GET v1.1/points/validationcode``) and checks
whether points can move between two customers (``POST v2/points/isTransferrable``), through a
proactive rate limiter, a shared 429 cooldown and a retry layer, into frozen attrs models.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._client import CapillaryClient, ClientStats
from ._limiting import InProcessRateLimiter, RateLimit, RateLimiter
from ._oauth import OAuth
from ._outage import Outage
from ._protocol import ApiRequest, BasicAuth, RawResponse, Region
from ._retry import RetryPolicy
from ._transport import AiohttpTransport, Transport
from .errors import (
    APIError,
    AuthenticationError,
    CapillaryError,
    CustomerNotFoundError,
    GroupTransferMismatchError,
    InsufficientPointsError,
    InvalidIdentifierError,
    InvalidProgramError,
    InvalidRequestError,
    InvalidValidationCodeError,
    OutcomeUnknownError,
    RateLimitedError,
    ResponseDecodeError,
    ServerError,
    TransferNotAllowedError,
    TransportError,
)
from .models import (
    Actor,
    Attribution,
    CommChannel,
    Customer,
    Identifier,
    IdentifierType,
    ItemStatus,
    LoyaltyInfo,
    Outcome,
    Profile,
    ProfileIdentifier,
    ProgramDeduction,
    Redeemability,
    RedeemabilityRequest,
    RedeemRequest,
    Redemption,
    RedemptionEffect,
    RedemptionEffects,
    Transfer,
    TransferCheck,
    TransferCheckRequest,
    TransferParty,
    TransferRequest,
    ValidationCode,
    ValidationCodeRequest,
)
from .points import Points

try:
    __version__ = version("capillary-points-async")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "APIError",
    "Actor",
    "AiohttpTransport",
    "ApiRequest",
    "Attribution",
    "AuthenticationError",
    "BasicAuth",
    "CapillaryClient",
    "CapillaryError",
    "ClientStats",
    "CommChannel",
    "Customer",
    "CustomerNotFoundError",
    "GroupTransferMismatchError",
    "Identifier",
    "IdentifierType",
    "InProcessRateLimiter",
    "InsufficientPointsError",
    "InvalidIdentifierError",
    "InvalidProgramError",
    "InvalidRequestError",
    "InvalidValidationCodeError",
    "ItemStatus",
    "LoyaltyInfo",
    "OAuth",
    "Outage",
    "Outcome",
    "OutcomeUnknownError",
    "Points",
    "Profile",
    "ProfileIdentifier",
    "ProgramDeduction",
    "RateLimit",
    "RateLimitedError",
    "RateLimiter",
    "RawResponse",
    "RedeemRequest",
    "Redeemability",
    "RedeemabilityRequest",
    "Redemption",
    "RedemptionEffect",
    "RedemptionEffects",
    "Region",
    "ResponseDecodeError",
    "RetryPolicy",
    "ServerError",
    "Transfer",
    "TransferCheck",
    "TransferCheckRequest",
    "TransferNotAllowedError",
    "TransferParty",
    "TransferRequest",
    "Transport",
    "TransportError",
    "ValidationCode",
    "ValidationCodeRequest",
    "__version__",
]
