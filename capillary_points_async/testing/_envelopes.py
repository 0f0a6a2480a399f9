"""Response bodies, built as plain dicts by small pure functions.

Each function mirrors one envelope of Capillary's documentation (``capillary-docs/API-NOTES.md``,
the endpoint pages and the examples of their OpenAPI definitions, copied to ``tests/samples``),
so that what the sandbox answers can be read against the docs line by line. Nothing here does
I/O or looks at the sandbox's state beyond its arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from http import HTTPStatus
from typing import Any

from ._state import Program, Redeemed, SandboxCustomer, Transferred

__all__ = [
    "customer_json",
    "echo",
    "html_error_page",
    "oauth_error",
    "oauth_token",
    "transfer_check",
    "transfer_done",
    "v2_errors",
    "v11_error",
    "v11_redeemable",
    "v11_redemption",
    "v11_status",
    "v11_validation_code",
    "whole",
]

JSON = dict[str, Any]

# The identifiers a v1.1 item echoes, in the order of the examples.
_ECHOED = ("mobile", "email", "external_id")

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


def v11_status(success: bool, code: int, message: str) -> JSON:
    # v1.1 says "true"/"false" as strings, v2 says true/false as booleans.
    return {"success": "true" if success else "false", "code": code, "message": message}


def v11_error(code: int, message: str) -> JSON:
    """A v1.1 request-level failure: only ``response.status``, no payload."""
    return {"response": {"status": v11_status(False, code, message)}}


def _v11_item(path: tuple[str, str], item: JSON, ok_message: str) -> JSON:
    """A v1.1 answer carrying one item, successful or not.

    A failed item (816 customer not found, 808 wrong validation code, 803 too few points)
    still comes with HTTP 200; only the request-level status turns into 500 "All requests
    have failed due to errors", as in the redeem endpoint's documented error example. That
    example is filed under HTTP 400 in the redeem page's OpenAPI block, whose other 400s are
    the placeholder ``"{}"``; the sandbox keeps one rule for every v1.1 item, and clients
    read ``item_status`` whatever the HTTP status.
    """
    status = (
        v11_status(True, 200, ok_message)
        if item["item_status"]["success"] == "true"
        else v11_status(False, 500, "All requests have failed due to errors")
    )
    outer, inner = path
    return {"response": {"status": status, outer: {inner: item}}}


def echo(customer: SandboxCustomer | None, asked: Mapping[str, str] | None = None) -> JSON:
    """The identifiers v1.1 items start with: the customer's, or for an unknown customer
    those asked for (as the redeem endpoint's documented 816 answer does)."""
    if customer is None:
        return {key: (asked or {}).get(key, "") for key in _ECHOED}
    return {
        "mobile": customer.mobile or "",
        "email": customer.email or "",
        "external_id": customer.external_id or "",
    }


def v11_validation_code(identifiers: JSON, points: int | None, item_status: JSON) -> JSON:
    """The ``validation_code`` envelope."""
    code = dict(identifiers)
    if points is not None:
        code["points"] = points
    code["item_status"] = item_status
    return _v11_item(("validation_code", "code"), code, "Operation Successful")


def v11_redeemable(identifiers: JSON, points: int, redeemable: bool, item_status: JSON) -> JSON:
    """The isredeemable envelope (``response.points.redeemable``), as its OpenAPI example:
    ``is_redeemable`` and ``points_currency_ratio`` are strings, one point is worth one unit."""
    item = {
        **identifiers,
        "points": points,
        "is_redeemable": "true" if redeemable else "false",
        "points_redeem_value": points,
        "points_redeem_local_value": points,
        "input_type": "points",
        "points_currency_ratio": "1",
        "item_status": item_status,
    }
    return _v11_item(("points", "redeemable"), item, "Success")


def v11_redemption(
    identifiers: JSON,
    customer: SandboxCustomer | None,
    points: int,
    done: Redeemed | None,
    item_status: JSON,
) -> JSON:
    """The redeem envelope (``response.responses.points``): with ``done``, the 200 example's
    fields; without, those of the documented failure (no id, no balance, no effects)."""
    item: JSON = {
        **identifiers,
        "user_id": None if customer is None else str(customer.user_id),
    }
    if done is None or customer is None:
        item.update(points_redeemed=str(points), redeemed_value=0, side_effects={"effect": []})
    else:
        effect = {
            "id": done.effect_id,
            "case_value": "false",
            "num_points": points,
            "currency_value": points,
            "validation_code": done.validation_code,
            "points_redemption_summary_id": str(done.effect_id),
            "redeemed_on_bill_number": done.transaction_number or "",
            "redeemed_on_bill_id": -1,
            "type": "points",
        }
        item.update(
            redemption_id=done.redemption_id,
            points_redeemed=str(points),  # a string, as in the example
            redemption_purpose="",
            redeemed_value=points,
            redeemed_local_value=points,
            balance=whole(customer.redeemable_points),
            side_effects={"effect": [effect]},
        )
    item["item_status"] = item_status
    return _v11_item(("responses", "points"), item, "Success")


def whole(number: float) -> float | int:
    """A balance as the examples write it: an integer when it is one."""
    return int(number) if number.is_integer() else number


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


def transfer_done(
    done: Transferred,
    source: SandboxCustomer,
    target: SandboxCustomer,
    program: Program,
    notes: str | None,
    when: datetime,
) -> JSON:
    """The transfer answer (HTTP 201), as its OpenAPI examples; ``when`` in UTC.

    The receiver gets what the sender loses: the examples' 2 transferred for 1 deducted is
    taken for a conversion between programs, which the sandbox's programs do not have.
    """
    item = {
        "toEntityId": target.user_id,
        "toEntityType": "CUSTOMER",
        "fromEntityId": source.user_id,
        "fromEntityType": "CUSTOMER",
        "pointsTransferDate": when.strftime("%Y-%m-%d %H:%M:%S"),
        "pointsTransferDateISO": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "pointsTransferred": done.points,
        "transferId": done.transfer_id,
        "transferType": "DEDUCTION",
        "transferredFrom": _party(source),
        "transferredTo": _party(target),
        "notes": notes or "",
        "programName": program.name,
        "pointsTransferBreakupByEarningPrograms": [
            {
                "programId": program.id,
                "deductedPoints": done.points,
                "programCurrentPoints": whole(source.redeemable_points),
            }
        ],
    }
    return {"data": [item], "warnings": [], "errors": []}


def _party(customer: SandboxCustomer) -> JSON:
    return {
        "userId": customer.user_id,
        "firstName": customer.first_name,
        "lastName": customer.last_name,
    }


def oauth_token(token: str, ttl_seconds: float) -> JSON:
    """The token endpoint's answer."""
    return {"data": {"accessToken": token, "ttlSeconds": whole(float(ttl_seconds))}, "errors": None}


def oauth_error(code: int, message: str) -> JSON:
    """The token endpoint's refusal."""
    return {"data": None, "errors": [{"code": code, "message": message}]}


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
