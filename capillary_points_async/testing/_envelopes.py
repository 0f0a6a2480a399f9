"""Response bodies, built as plain dicts by small pure functions.

Each function mirrors one envelope of Capillary's documentation (``capillary-docs/API-NOTES.md``
and the two endpoint pages), so that what the sandbox answers can be read against the docs
line by line. Nothing here does I/O or looks at the sandbox's state beyond its arguments.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from ._state import SandboxCustomer

__all__ = [
    "customer_json",
    "html_error_page",
    "transfer_check",
    "v2_errors",
    "v11_error",
    "v11_status",
    "v11_validation_code",
]

JSON = dict[str, Any]

# The till that created the documentation's sample customers; every sandbox customer claims
# it, so that attribution blocks look like the recorded ones.
_TILL: JSON = {
    "id": 75155295,
    "code": "sant.p_123",
    "name": "sant.p_123",
    "type": "TILL",
    "referenceId": -1,
    "default": False,
}

# v1.1 says "true"/"false" as strings, v2 says true/false as booleans.
_V11_OK: JSON = {"success": "true", "code": 200, "message": "Operation Successful"}


def v11_status(success: bool, code: int, message: str) -> JSON:
    return {"success": "true" if success else "false", "code": code, "message": message}


def v11_error(code: int, message: str) -> JSON:
    """A v1.1 request-level failure: only ``response.status``, no payload."""
    return {"response": {"status": v11_status(False, code, message)}}


def v11_validation_code(
    *, mobile: str, email: str, external_id: str, points: int | None, item_status: JSON
) -> JSON:
    """The ``validation_code`` envelope, successful or not.

    A failed item (e.g. 816, customer not found) still comes with HTTP 200; only the
    request-level status turns into 500 "All requests have failed due to errors", as in the
    redeem endpoint's documented error example.
    """
    code: JSON = {"mobile": mobile, "email": email, "external_id": external_id}
    if points is not None:
        code["points"] = points
    code["item_status"] = item_status
    status = (
        _V11_OK
        if item_status["success"] == "true"
        else v11_status(False, 500, "All requests have failed due to errors")
    )
    return {"response": {"status": dict(status), "validation_code": {"code": code}}}


def v2_errors(code: int, message: str, *, gateway: bool = False) -> JSON:
    """A v2 error body. ``errors`` arrives without ``data``.

    Application errors (8015, 885...) also carry an empty ``warnings`` list; the gateway's own
    answers (401, 429) do not, since they never reach the application.
    """
    body: JSON = {} if gateway else {"warnings": []}
    body["errors"] = [{"status": False, "code": code, "message": message}]
    return body


def transfer_check(
    points: float, source: SandboxCustomer, target: SandboxCustomer, transferrable: bool
) -> JSON:
    """The isTransferrable success body: one ``data`` item, empty warnings and errors."""
    item = {
        "pointsTobeTransferred": float(points),
        "transferFrom": customer_json(source),
        "transferTo": customer_json(target),
        "transferrable": transferrable,
    }
    return {"data": [item], "warnings": [], "errors": []}


def _attribution(customer: SandboxCustomer) -> JSON:
    return {
        "createDate": customer.created,
        "createdBy": dict(_TILL),
        "modifiedBy": dict(_TILL),
        "modifiedDate": customer.modified,
    }


def _identifiers(customer: SandboxCustomer) -> list[JSON]:
    # The order of the documentation's first sample customer: mobile, externalId, email.
    pairs = [
        ("mobile", customer.mobile),
        ("externalId", customer.external_id),
        ("email", customer.email),
        ("cardNumber", customer.card_number),
    ]
    return [{"type": kind, "value": value} for kind, value in pairs if value is not None]


def _comm_channel(kind: str, value: str) -> JSON:
    return {
        "type": kind,
        "value": value,
        "primary": True,
        "verified": False,
        "meta": {"residence": False, "office": False},
        "attributes": {},
    }


def customer_json(customer: SandboxCustomer) -> JSON:
    """A customer as isTransferrable shows it (``transferFrom`` / ``transferTo``)."""
    channels = [
        _comm_channel(kind, value)
        for kind, value in (("mobile", customer.mobile), ("email", customer.email))
        if value is not None
    ]
    profile = {
        "firstName": customer.first_name,
        "lastName": customer.last_name,
        "attribution": _attribution(customer),
        "fields": {},
        "allFields": {},
        "identifiers": _identifiers(customer),
        "commChannels": channels,
        "source": "INSTORE",
        "userId": customer.user_id,
        "accountId": "",
        "conflictingProfileList": [],
        "autoUpdateTime": customer.auto_updated,
        "identifiersAll": _identifiers(customer),
    }
    return {
        "id": customer.user_id,
        "profiles": [profile],
        "loyaltyInfo": {
            "loyaltyType": "loyalty",
            "attributionV2": _attribution(customer),
            "lifetimePurchases": float(customer.lifetime_purchases),
        },
        "segments": {},
        "extendedFields": {},
    }


def html_error_page(status: int) -> str:
    """What a proxy in front of the API sends when the backend is down: HTML, not JSON."""
    try:
        title = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        title = f"{status} Server Error"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
