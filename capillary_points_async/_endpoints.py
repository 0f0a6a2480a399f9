"""Every endpoint the client calls, each declared once: method, path and its aliases,
envelope, request builder, request and result types, whether it may be re-sent, and its own
error codes. The client, the retry decision, the limiter keys and the sandbox read these
declarations; nothing else in the stack names an endpoint (openai-python's resources habit:
adding an endpoint adds a declaration, a model and a method, nothing in the stack).

References are to Capillary's endpoint pages and ``API-NOTES.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, Generic, TypeVar

import attrs
import orjson

from . import errors
from ._converter import builder
from ._protocol import ApiRequest, Codes, Decoded, Envelope, RawResponse, V2Envelope, V11Envelope
from .models import (
    Identifier,
    Redeemability,
    RedeemabilityRequest,
    RedeemRequest,
    Redemption,
    Transfer,
    TransferCheck,
    TransferCheckRequest,
    TransferRequest,
    ValidationCode,
    ValidationCodeRequest,
)

__all__ = [
    "ENDPOINTS",
    "IS_REDEEMABLE",
    "IS_TRANSFERRABLE",
    "REDEEM",
    "TRANSFER",
    "VALIDATION_CODE",
    "Endpoint",
    "canonical_key",
]

Q = TypeVar("Q")
T = TypeVar("T")

Params = tuple[tuple[str, str], ...]

_api_request = builder(ApiRequest)  # ApiRequest(...), for a fraction of the instructions


@attrs.frozen(eq=False)
class Endpoint(Generic[Q, T]):
    """One endpoint, declared.

    Attributes:
        key: the path below the base URL, e.g. ``"v2/points/isTransferrable"``; also the
            endpoint's rate-limit key.
        method: the HTTP method.
        envelope: how answers are wrapped (:class:`V11Envelope` with its item path, or
            :class:`V2Envelope`).
        params: the query parameters of a request object.
        body: the JSON body of a request object, or None for a request without one.
        request_type: the request objects' class (what ``*_many`` accepts).
        model: the result class the answer's item is structured into.
        idempotent: whether sending the same request twice is harmless. One that is not
            (it moves points) is re-sent only when the request provably never reached the
            server (DESIGN.md, "The rest of the two flows").
        codes: error codes of this endpoint only, on top of the shared table in _protocol.
        aliases: other spellings of ``key`` accepted where users name endpoints.
    """

    key: str
    method: str
    envelope: Envelope
    params: Callable[[Q], Params]
    body: Callable[[Q], dict[str, Any]] | None
    request_type: type[Q]
    model: type[T]
    idempotent: bool
    codes: Codes = attrs.field(factory=dict)
    aliases: tuple[str, ...] = ()

    def decode(self, raw: RawResponse, now: float) -> Decoded:
        """The answer's item and envelope values, or the typed error (``now``: wall time)."""
        return self.envelope.decode(raw, now, self.key, self.codes)

    def request(self, query: Q) -> ApiRequest:
        """The HTTP request for one request object."""
        body = self.body
        return _api_request(
            self.method,
            self.key,
            self.key,
            self.params(query),
            None if body is None else orjson.dumps(body(query)),
        )


# --------------------------------------------------------------------------- validationcode


def _validation_code_params(request: ValidationCodeRequest) -> Params:
    ident = request.identifier
    params: Params = ((ident.type.value, ident.value),)
    if request.points is not None:
        params += (("points", str(request.points)),)
    return (*params, ("format", "json"))


VALIDATION_CODE: Final = Endpoint(
    key="v1.1/points/validationcode",
    method="GET",
    envelope=V11Envelope(("validation_code", "code")),
    params=_validation_code_params,
    body=None,
    request_type=ValidationCodeRequest,
    model=ValidationCode,
    # Issuing again within the validity period re-sends the same code (API-NOTES.md).
    idempotent=True,
)


# --------------------------------------------------------------------------- isTransferrable


def _v2_identifier(identifier: Identifier) -> dict[str, str]:
    return {"type": identifier.type.v2_type, "value": identifier.value}


def _no_params(_: object) -> Params:
    return ()  # everything is in the body


def _transfer_check_body(request: TransferCheckRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "pointsTobeTransferred": request.points,
        "groupProgramTransfer": request.group_program_transfer,
    }
    if request.program_id is not None:
        body["programId"] = request.program_id
    body["fromCustomerIdentifier"] = _v2_identifier(request.from_customer)
    body["toCustomerIdentifier"] = _v2_identifier(request.to_customer)
    body["issueOtp"] = request.issue_otp
    return body


IS_TRANSFERRABLE: Final = Endpoint(
    key="v2/points/isTransferrable",
    method="POST",
    envelope=V2Envelope(),
    params=_no_params,
    body=_transfer_check_body,
    request_type=TransferCheckRequest,
    model=TransferCheck,
    idempotent=True,  # a check moves nothing
    codes={3316: errors.GroupTransferMismatchError},
    # Capillary's own OpenAPI definition spells the path with one r.
    aliases=("v2/points/isTransferable",),
)


# --------------------------------------------------------------------------- isredeemable

# Answers that a redemption or transfer cannot go ahead for a reason the caller acts on
# (points-v1.1 and points-v2 status code tables; OTP codes of the OTP API).
_WRONG_CODE: Final = dict.fromkeys((808, 604, 605, 876, 9001), errors.InvalidValidationCodeError)
_TOO_FEW_POINTS: Final = dict.fromkeys((803, 804, 805, 813, 818), errors.InsufficientPointsError)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _is_redeemable_params(request: RedeemabilityRequest) -> Params:
    ident = request.identifier
    params: Params = ((ident.type.value, ident.value), ("points", str(request.points)))
    if request.program_id is not None:
        params += (("program_id", str(request.program_id)),)
    if request.validation_code is not None:
        params += (("validation_code", request.validation_code),)
    return (*params, ("issue_otp", _flag(request.issue_otp)), ("format", "json"))


IS_REDEEMABLE: Final = Endpoint(
    key="v1.1/points/isredeemable",
    method="GET",
    envelope=V11Envelope(("points", "redeemable")),
    params=_is_redeemable_params,
    body=None,
    request_type=RedeemabilityRequest,
    model=Redeemability,
    # A check; with issue_otp it (re-)sends the OTP, which issuing again re-sends the same way.
    idempotent=True,
    codes={**_WRONG_CODE, **_TOO_FEW_POINTS},
)


# --------------------------------------------------------------------------- redeem


def _v11_customer(identifier: Identifier) -> dict[str, str]:
    return {identifier.type.value: identifier.value}


def _redeem_params(request: RedeemRequest) -> Params:
    if request.program_id is None:
        return (("format", "json"),)
    return (("program_id", str(request.program_id)), ("format", "json"))


def _redeem_body(request: RedeemRequest) -> dict[str, Any]:
    item: dict[str, Any] = {
        "points_redeemed": request.points,
        "customer": _v11_customer(request.identifier),
        "validation_code": request.validation_code,
    }
    if request.transaction_number is not None:
        item["transaction_number"] = request.transaction_number
    if request.notes is not None:
        item["notes"] = request.notes
    return {"root": {"redeem": [item]}}


REDEEM: Final = Endpoint(
    key="v1.1/points/redeem",
    method="POST",
    envelope=V11Envelope(("responses", "points")),
    params=_redeem_params,
    body=_redeem_body,
    request_type=RedeemRequest,
    model=Redemption,
    idempotent=False,  # it takes points from the customer
    codes={**_WRONG_CODE, **_TOO_FEW_POINTS},
)


# --------------------------------------------------------------------------- transfer


def _transfer_body(request: TransferRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"pointsTobeTransferred": request.points}
    if request.program_id is not None:
        body["programId"] = request.program_id
    body["fromCustomerIdentifier"] = _v2_identifier(request.from_customer)
    body["toCustomerIdentifier"] = _v2_identifier(request.to_customer)
    if request.code is not None:
        body["code"] = request.code
    if request.notes is not None:
        body["notes"] = request.notes
    return body


TRANSFER: Final = Endpoint(
    key="v2/points/transfer",
    method="POST",
    envelope=V2Envelope(),
    params=_no_params,
    body=_transfer_body,
    request_type=TransferRequest,
    model=Transfer,
    idempotent=False,  # it moves points between customers
    codes={
        **_WRONG_CODE,
        **_TOO_FEW_POINTS,
        # API-NOTES.md: 422 "invalid points"; the client refuses every malformed amount
        # before sending, so what is left is more than the customer can transfer.
        422: errors.InsufficientPointsError,
        419: errors.InvalidIdentifierError,  # a merged customer: use the surviving one
        901: errors.TransferNotAllowedError,
        903: errors.TransferNotAllowedError,
        904: errors.TransferNotAllowedError,
        3316: errors.GroupTransferMismatchError,
    },
)


ENDPOINTS: Final[tuple[Endpoint[Any, Any], ...]] = (
    VALIDATION_CODE,
    IS_TRANSFERRABLE,
    IS_REDEEMABLE,
    REDEEM,
    TRANSFER,
)

_BY_NAME: Final[Mapping[str, Endpoint[Any, Any]]] = {
    name: endpoint for endpoint in ENDPOINTS for name in (endpoint.key, *endpoint.aliases)
}


def canonical_key(key: str) -> str:
    """Map a user-supplied endpoint key (or alias) to the client's, or raise
    InvalidRequestError."""
    endpoint = _BY_NAME.get(key)
    if endpoint is None:
        keys = ", ".join(e.key for e in ENDPOINTS)
        raise errors.InvalidRequestError(f"unknown endpoint key {key!r}; expected one of {keys}")
    return endpoint.key
