"""Reading requests: pure functions from query strings and bodies to checked values.

A request the documentation would refuse raises :class:`Rejected` with the documented code
(API-NOTES.md, "v1.1 envelope" and "v2 envelope"), which the server turns into the endpoint's
error envelope. Lookups that need the sandbox's state (customers, programs) are not done here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn

import attrs
import orjson

from ._state import IDENTIFIER_KINDS, identifier_kind_of_v2_type

__all__ = [
    "RedeemBody",
    "RedeemabilityQuery",
    "Rejected",
    "TransferBody",
    "ValidationCodeQuery",
    "int32",
    "parse_redeem",
    "parse_redeem_query",
    "parse_redeemability",
    "parse_token_request",
    "parse_transfer",
    "parse_validation_code",
    "reject",
]


class Rejected(Exception):
    """The request gets an error answer: HTTP ``status``, Capillary ``code`` and message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def reject(status: int, code: int, message: str) -> NoReturn:
    raise Rejected(status, code, message)


# Points and program ids are int32 in Capillary's OpenAPI definitions.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_INT32_DIGITS = len(str(INT32_MAX))


def int32(value: object) -> int | None:
    """The int32 a query-string or JSON value stands for, or None if it stands for none.

    Takes a JSON integer, a float without a fraction (``973.0``, as encoders that keep every
    number a double send it), and text of ASCII digits with an optional leading minus. Refuses
    what ``int()`` or ``str.isdigit()`` would let through besides (``"+5"``, ``" 5"``,
    ``"1_000"``, Arabic-Indic or superscript digits), booleans, and anything outside int32,
    which the API refuses and which the sandbox could not even echo (orjson writes 64-bit
    integers at most).
    """
    if type(value) is int:  # not bool, a subclass of int
        number = value
    elif isinstance(value, str):
        digits = value[1:] if value[:1] == "-" else value
        # Counting digits first keeps int() away from huge strings (it refuses > 4300 digits).
        if len(digits) > _INT32_DIGITS or not (digits.isascii() and digits.isdigit()):
            return None
        number = int(value)
    elif isinstance(value, float) and value.is_integer():  # is_integer(): False for inf, nan
        number = int(value)
    else:
        return None
    return number if INT32_MIN <= number <= INT32_MAX else None


@attrs.frozen
class ValidationCodeQuery:
    kind: str
    value: str
    points: int | None


@attrs.frozen
class RedeemabilityQuery:
    kind: str
    value: str
    points: int
    program_id: int | None  # None: the org's default program
    issue_otp: bool
    validation_code: str | None


@attrs.frozen
class RedeemBody:
    kind: str
    value: str
    points: int
    validation_code: str | None
    transaction_number: str | None


@attrs.frozen
class TransferBody:
    """The body of isTransferrable and of transfer, which share their fields."""

    points: int
    program_id: int | None  # None: the org's default program
    group: bool
    issue_otp: bool  # isTransferrable's
    source: tuple[str, str]  # (identifier kind, value)
    target: tuple[str, str]
    code: str | None  # transfer's: the OTP issued for it
    notes: str | None  # transfer's


def _format_json(query: Mapping[str, str]) -> None:
    if query.get("format", "json").lower() != "json":
        reject(400, 400, "the sandbox answers format=json only")


def _query_identifier(query: Mapping[str, str]) -> tuple[str, str]:
    """The first identifier given, in :data:`IDENTIFIER_KINDS` order."""
    for kind in IDENTIFIER_KINDS:
        value = query.get(kind, "").strip()
        if value:
            return kind, value
    reject(400, 400, f"pass one identifier: {', '.join(IDENTIFIER_KINDS)}")


def parse_validation_code(query: Mapping[str, str]) -> ValidationCodeQuery:
    """The identifier and ``points``."""
    _format_json(query)
    points = query.get("points")
    # Any sign: the docs' own curl sends points=-100 and gets it echoed back.
    number = None if points is None else int32(points)
    if points is not None and number is None:
        reject(400, 400, f"points must be a whole number (int32), got {points!r}")
    return ValidationCodeQuery(*_query_identifier(query), number)


def parse_redeemability(query: Mapping[str, str]) -> RedeemabilityQuery:
    """The isredeemable query: identifier, ``points`` (required, > 0), ``program_id``,
    ``issue_otp`` and ``validation_code``."""
    _format_json(query)
    kind, value = _query_identifier(query)
    return RedeemabilityQuery(
        kind,
        value,
        _positive(query.get("points"), "points"),
        _program_id(query.get("program_id")),
        _flag(query.get("issue_otp"), "issue_otp"),
        query.get("validation_code") or None,
    )


def parse_redeem_query(query: Mapping[str, str]) -> int | None:
    """The ``program_id`` of a redeem's query (None: the org's default program)."""
    _format_json(query)
    return _program_id(query.get("program_id"))


def parse_redeem(content_type: str, payload: bytes) -> RedeemBody:
    """A redeem body, ``{"root": {"redeem": [item]}}``; the schema's object in place of the
    examples' one-item array is taken too. One item per request: what the client sends."""
    body = _json_object(content_type, payload)
    root = body.get("root")
    items = root.get("redeem") if isinstance(root, dict) else None
    item = items[0] if isinstance(items, list) and len(items) == 1 else items
    if not isinstance(item, dict):
        reject(400, 400, "the body must be {'root': {'redeem': [one item]}}")
    customer = item.get("customer")
    identifier = next(
        (
            (kind, str(value).strip())
            for kind in IDENTIFIER_KINDS
            if isinstance(customer, dict)
            and isinstance(value := customer.get(kind), (str, int))
            and not isinstance(value, bool)
            and str(value).strip()
        ),
        None,
    )
    if identifier is None:
        reject(400, 400, f"customer must carry one of {', '.join(IDENTIFIER_KINDS)}")
    return RedeemBody(
        *identifier,
        points=_positive(item.get("points_redeemed"), "points_redeemed"),
        validation_code=_text(item.get("validation_code"), "validation_code"),
        transaction_number=_text(item.get("transaction_number"), "transaction_number"),
    )


def parse_transfer(content_type: str, payload: bytes, *, check: bool) -> TransferBody:
    """An isTransferrable body (``check``) or a transfer body; the first problem found
    decides the answer. A check reads ``issueOtp``, a transfer ``code`` and ``notes``."""
    body = _json_object(content_type, payload)
    return TransferBody(
        points=_points(body.get("pointsTobeTransferred")),
        program_id=_program_id(body.get("programId")),
        group=_flag(body.get("groupProgramTransfer"), "groupProgramTransfer"),
        issue_otp=check and _flag(body.get("issueOtp"), "issueOtp"),
        source=_identifier(body.get("fromCustomerIdentifier")),
        target=_identifier(body.get("toCustomerIdentifier")),
        code=None if check else _text(body.get("code"), "code"),
        notes=None if check else _text(body.get("notes"), "notes"),
    )


def parse_token_request(content_type: str, payload: bytes) -> tuple[str, str]:
    """The ``key`` and ``secret`` of an OAuth token request."""
    body = _json_object(content_type, payload)
    key, secret = body.get("key"), body.get("secret")
    if not (isinstance(key, str) and isinstance(secret, str)):
        reject(400, 400, "send the OAuth client's key and secret as JSON strings")
    return key, secret


def _json_object(content_type: str, payload: bytes) -> dict[str, object]:
    if content_type != "application/json":
        reject(415, 415, "Unsupported Media Type: send application/json")
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        reject(400, 400, "the body is not valid JSON")
    if not isinstance(body, dict):
        reject(400, 400, "the body must be a JSON object")
    return body


def _positive(value: object, name: str) -> int:
    # v1.1 points: a JSON number or its digits in a string (the redeem schema says string).
    number = int32(value)
    if number is None or number <= 0:
        reject(400, 400, f"{name} must be a whole number above 0 (int32), got {value!r}")
    return number


def _text(value: object, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    reject(400, 400, f"{name} must be a string")


def _points(value: object) -> int:
    # A JSON number only: "1" is refused, unlike programId's digits in a string.
    number = None if isinstance(value, str) else int32(value)
    if number is not None and number > 0:
        return number
    if isinstance(value, float) and 0 < value < INT32_MAX:  # a fraction: int32() said None
        reject(400, 807, "Points should be whole numbers only")
    reject(400, 422, "Invalid points")


def _program_id(value: object) -> int | None:
    # Absent means the org's default program. The digits in a string count too, as Java
    # backends accept them. Whether such a program exists is the server's question (also 885).
    if value is None:
        return None
    number = int32(value)
    if number is None:
        reject(400, 885, "Invalid program id passed")
    return number


def _flag(value: object, name: str) -> bool:
    # New samples send booleans, old ones the strings "true"/"false" (API-NOTES.md).
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    reject(400, 400, f"{name} must be true or false")


def _identifier(value: object) -> tuple[str, str]:
    if isinstance(value, dict):
        type_, raw = value.get("type"), value.get("value")
        kind = identifier_kind_of_v2_type(type_) if isinstance(type_, str) else None
        if kind and isinstance(raw, (str, int)) and not isinstance(raw, bool) and str(raw).strip():
            return kind, str(raw)
    reject(400, 8013, "Invalid identifier passed")
