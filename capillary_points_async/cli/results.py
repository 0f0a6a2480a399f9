"""What commands write: results as JSON, errors as fields or one line, and exit statuses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import cattrs
import orjson

from .. import APIError, CapillaryError, OutcomeUnknownError

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "describe", "error_fields", "to_json"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

_JSON = cattrs.Converter()
_JSON.register_unstructure_hook(datetime, datetime.isoformat)


def to_json(value: object, *, pretty: bool = False) -> str:
    """A result model or plain data as JSON; datetimes as ISO 8601 strings."""
    option = orjson.OPT_INDENT_2 if pretty else 0
    return orjson.dumps(_JSON.unstructure(value), option=option).decode()


def error_fields(exc: CapillaryError) -> dict[str, Any]:
    """``{"type", "code", "message", "request_id"}`` of an error, for JSON and for stderr."""
    if isinstance(exc, APIError):
        message = exc.message
    else:
        message = str(exc.args[0]) if exc.args else type(exc).__name__
    return {
        "type": type(exc).__name__,
        "code": getattr(exc, "code", None),
        "message": message,
        "request_id": getattr(exc, "request_id", None),
    }


def describe(exc: CapillaryError) -> str:
    """One line: ``CustomerNotFoundError: ... (code 8015, HTTP 400, request id ...)``. An
    :class:`OutcomeUnknownError` says when it has no request id, since the caller who checks
    what happened would quote one."""
    fields = error_fields(exc)
    details = []
    if fields["code"] is not None:
        details.append(f"code {fields['code']}")
    status = getattr(exc, "status", None)
    if status is not None and status != fields["code"]:
        details.append(f"HTTP {status}")
    if fields["request_id"]:
        details.append(f"request id {fields['request_id']}")
    elif isinstance(exc, OutcomeUnknownError):
        details.append("no request id: no answer carried one")
    suffix = f" ({', '.join(details)})" if details else ""
    return f"{fields['type']}: {fields['message']}{suffix}"
