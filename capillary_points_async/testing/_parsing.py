"""Reading requests: pure functions from query strings and bodies to checked values.

A request the documentation would refuse raises :class:`Rejected` with the documented code
(API-NOTES.md, "v1.1 envelope" and "v2 envelope"), which the server turns into the endpoint's
error envelope. Lookups that need the sandbox's state (customers, programs) are not done here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NoReturn

import attrs
import orjson

from ._state import IDENTIFIER_KINDS, identifier_kind_of_v2_type

__all__ = [
    "Rejected",
    "TransferCheckBody",
    "ValidationCodeQuery",
    "parse_transfer_check",
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


@attrs.frozen
class ValidationCodeQuery:
    kind: str
    value: str
    points: int | None


@attrs.frozen
class TransferCheckBody:
    points: float
    program_id: int | None  # None: the org's default program
    group: bool
    issue_otp: bool
    source: tuple[str, str]  # (identifier kind, value)
    target: tuple[str, str]


def parse_validation_code(query: Mapping[str, str]) -> ValidationCodeQuery:
    """The first identifier given (in :data:`IDENTIFIER_KINDS` order) and ``points``."""
    if query.get("format", "json").lower() != "json":
        reject(400, 400, "the sandbox answers format=json only")
    points = query.get("points")
    try:
        # Any sign: the docs' own curl sends points=-100 and gets it echoed back.
        number = None if points is None else int(points)
    except ValueError:
        reject(400, 400, f"points must be a whole number, got {points!r}")
    for kind in IDENTIFIER_KINDS:
        value = query.get(kind, "").strip()
        if value:
            return ValidationCodeQuery(kind, value, number)
    reject(400, 400, f"pass one identifier: {', '.join(IDENTIFIER_KINDS)}")


def parse_transfer_check(content_type: str, payload: bytes) -> TransferCheckBody:
    """Check an isTransferrable body; the first problem found decides the answer."""
    if content_type != "application/json":
        reject(415, 415, "Unsupported Media Type: send application/json")
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        reject(400, 400, "the body is not valid JSON")
    if not isinstance(body, dict):
        reject(400, 400, "the body must be a JSON object")
    program = body.get("programId")
    return TransferCheckBody(
        points=_points(body.get("pointsTobeTransferred")),
        program_id=None
        if program is None
        else _whole_number(program, 885, "Invalid program id passed"),
        group=_flag(body.get("groupProgramTransfer"), "groupProgramTransfer"),
        issue_otp=_flag(body.get("issueOtp"), "issueOtp"),
        source=_identifier(body.get("fromCustomerIdentifier")),
        target=_identifier(body.get("toCustomerIdentifier")),
    )


def _points(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        reject(400, 422, "Invalid points")
    if value != int(value):
        reject(400, 807, "Points should be whole numbers only")
    return float(value)


def _whole_number(value: object, code: int, message: str) -> int:
    # A JSON number, or the digits in a string as Java backends accept them.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    reject(400, code, message)


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
