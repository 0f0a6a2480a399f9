"""The wire protocol without I/O: authentication, the two envelopes (v1.1 and v2) and their
decoders, error mapping and Retry-After parsing.

Everything here is a pure function of its arguments, so tests feed it bytes and headers and
no server is needed (gidgethub's ``sansio`` habit). What differs per endpoint (path, method,
request body, item path, model, codes) is declared in ``_endpoints``; nothing here names an
endpoint. References are to Capillary's docs: envelopes, codes, hosts and auth are in
``API-NOTES.md`` of the project's design notes.
"""

from __future__ import annotations

import base64
import email.utils
import enum
import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

import attrs
import orjson

from . import errors

REQUEST_ID_HEADER: Final = "X-Cap-Requestid"


class Region(str, enum.Enum):
    """Capillary clusters (API-NOTES.md, "Hosts"). Any base URL string works too."""

    APAC = "https://apac.api.capillarytech.com"
    APAC2 = "https://apac2.api.capillarytech.com"
    EU = "https://eu.api.capillarytech.com"
    US = "https://us.api.capillarytech.com"
    CHINA = "https://api.capillarytech.cn.com"

    def __str__(self) -> str:
        return self.value


_MD5_HEX = re.compile(r"[0-9a-fA-F]{32}")
_INT = re.compile(r"-?[0-9]+")


class BasicAuth:
    """Capillary's Basic authentication: ``base64(till_code + ":" + md5_hex(password))``.

    ``BasicAuth(username, password)`` hashes the password at once; the plain password is not
    kept. Use :meth:`from_md5` when only the digest is known. Neither the password nor its
    digest appears in ``repr``, ``str`` or any error.
    """

    __slots__ = ("_header", "username")

    def __init__(self, username: str, password: str) -> None:
        if not isinstance(password, str) or not password:
            raise errors.InvalidRequestError("password must be a non-empty string")
        self._set(
            username, hashlib.md5(password.encode("utf-8"), usedforsecurity=False).hexdigest()
        )

    @classmethod
    def from_md5(cls, username: str, digest: str) -> BasicAuth:
        """Build from the MD5 hex digest of the password, as Capillary stores it."""
        if not isinstance(digest, str) or not _MD5_HEX.fullmatch(digest):
            raise errors.InvalidRequestError("digest must be 32 hexadecimal characters")
        self = cls.__new__(cls)
        self._set(username, digest.lower())
        return self

    def _set(self, username: str, digest: str) -> None:
        if not isinstance(username, str) or not username or ":" in username:
            raise errors.InvalidRequestError(
                "username (the till code) must be a non-empty string without ':'"
            )
        self.username = username
        token = base64.b64encode(f"{username}:{digest}".encode()).decode("ascii")
        self._header = f"Basic {token}"

    @property
    def header(self) -> str:
        """The ``Authorization`` header value. A secret: never log it."""
        return self._header

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BasicAuth) and other._header == self._header

    def __hash__(self) -> int:
        return hash(self._header)

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password=<hidden>)"


@attrs.frozen(slots=True)
class ApiRequest:
    """One HTTP request, ready for a transport.

    ``key`` names the endpoint for rate limiting and logs; ``path`` is relative to the base
    URL; ``body`` is already-encoded JSON; ``headers`` are this request's own, sent on top of
    the transport's (an OAuth token): a transport must send them.
    """

    method: str
    key: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), repr=False)


@attrs.frozen(slots=True)
class RawResponse:
    """What a transport hands back: status, headers (looked up case-insensitively, e.g. a
    ``multidict.CIMultiDict``), and the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


# --------------------------------------------------------------------------- errors

Codes = Mapping[int, type[errors.APIError]]

# The codes every endpoint may answer (API-NOTES.md, both endpoint pages); an endpoint's own
# codes are declared with it and take precedence. HTTP statuses 401, 429 and 5xx are matched
# by status in error_class; these are envelope codes.
_CODE_ERRORS: Final[Codes] = {
    401: errors.AuthenticationError,
    429: errors.RateLimitedError,
    517: errors.RateLimitedError,
    521: errors.ServerError,
    816: errors.CustomerNotFoundError,
    8015: errors.CustomerNotFoundError,
    885: errors.InvalidProgramError,
    802: errors.InvalidIdentifierError,
    434: errors.InvalidIdentifierError,
    8013: errors.InvalidIdentifierError,
}


def error_class(
    status: int, code: int | None, codes: Codes = _CODE_ERRORS
) -> type[errors.APIError]:
    """The error class for an HTTP status and Capillary code.

    The HTTP status decides first where it is unambiguous (401, 429, 5xx); otherwise the
    code, which is more specific than a 400 or an error inside a 200: the endpoint's own
    ``codes`` first, then the shared table.
    """
    if status == 401:
        return errors.AuthenticationError
    if status == 429:
        return errors.RateLimitedError
    if status >= 500:
        return errors.ServerError
    if code is not None:
        return codes.get(code) or _CODE_ERRORS.get(code, errors.APIError)
    return errors.APIError


def _int_code(value: object) -> int | None:
    """Codes come as ints in new docs and as strings ("200") in old ones."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        return int(value)
    return None


def _flag(value: object) -> bool | None:
    """v1.1 sends ``success`` as the string "true"/"false"; accept a JSON bool as well."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered == "true":
            return True
        if lowered == "false":
            return False
    return None


# --------------------------------------------------------------------------- Retry-After

_RATE_RESET_HEADERS: Final = ("RateLimit-Reset", "X-RateLimit-Reset")


# RFC 9110 delay-seconds are ASCII digits; a fraction is tolerated since some gateways send one.
# float() alone would also take "-5", "1_000", "inf" and non-ASCII digits.
_DELAY_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP date.

    ``now`` is the wall-clock time (``time.time()``) the date is measured against. Returns
    None when absent or invalid (a negative number, a date no calendar has), so that the
    caller's own backoff applies; a date in the past gives 0.
    """
    if value is None:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
            if when.tzinfo is None:  # RFC 9110 dates are GMT
                return None
            seconds = when.timestamp() - now
        # parsedate_to_datetime raises OverflowError for years or days no datetime holds
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """The server's requested wait: ``Retry-After``, else a rate-limit reset header.

    ``RateLimit-Reset`` (IETF draft) and ``X-RateLimit-Reset`` are read as delay-seconds,
    or as an epoch timestamp when the number is too large to be a delay.
    """
    seconds = parse_retry_after(headers.get("Retry-After"), now)
    if seconds is not None:
        return seconds
    for name in _RATE_RESET_HEADERS:
        seconds = parse_retry_after(headers.get(name), now)
        if seconds is not None:
            # a value past a year of seconds can only be an epoch timestamp
            return max(seconds - now, 0.0) if seconds > 31_536_000 else seconds
    return None


_REMAINING_HEADERS: Final = ("X-RateLimit-Remaining", "RateLimit-Remaining")


def quota_exhausted_for(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to hold an endpoint when the server says its quota is used up
    (``X-RateLimit-Remaining: 0`` or ``RateLimit-Remaining: 0``) before it answers 429;
    None when it does not say so or gives no reset time."""
    for name in _REMAINING_HEADERS:
        remaining = headers.get(name)
        if remaining is not None:
            if remaining.strip() != "0":
                return None
            return retry_after(headers, now)
    return None


# --------------------------------------------------------------------------- decoding


class Decoded(NamedTuple):
    """A successful answer: the item to structure and what the envelope says beside it.
    The item is the wire's own object, untouched: decoders never write into it."""

    item: dict[str, Any]
    request_id: str | None
    warnings: list[Any] | None = None  # v2 only

    def fields(self) -> dict[str, Any]:
        """The item with the envelope's values under their own keys (``request_id``,
        ``warnings``), as the result models' envelope fields read them: a new dict."""
        extra: dict[str, Any] = {"request_id": self.request_id}
        if self.warnings is not None:
            extra["warnings"] = self.warnings
        return {**self.item, **extra}


def _api_error(
    raw: RawResponse,
    entry: Mapping[str, Any],
    request_id: str | None,
    now: float,
    codes: Codes,
) -> errors.APIError:
    """The error for an answer whose failing entry (v1.1 ``status``/``item_status``, a v2
    ``errors`` item, or ``{}``) carries the code and message."""
    code = _int_code(entry.get("code"))
    message = entry.get("message")
    cls = error_class(raw.status, code, codes)
    return cls(
        message if isinstance(message, str) and message else _status_message(raw.status),
        status=raw.status,
        code=code if code is not None else raw.status,
        request_id=request_id,
        retry_after=retry_after(raw.headers, now),
    )


def _status_message(status: int) -> str:
    return f"Capillary answered HTTP {status} without an error message"


def _load(raw: RawResponse, what: str, request_id: str | None) -> Any:
    try:
        return orjson.loads(raw.body)
    except orjson.JSONDecodeError:
        if raw.status >= 300 or raw.status < 200:
            return None  # the HTTP status still tells what happened
        excerpt = raw.body[:60].decode("utf-8", "replace")
        raise errors.ResponseDecodeError(
            f"{what} answer is not JSON (HTTP {raw.status}, {len(raw.body)} bytes, "
            f"starting {excerpt!r})",
            status=raw.status,
            request_id=request_id,
            retryable=True,
        ) from None


def _shape_error(
    what: str, detail: str, raw: RawResponse, request_id: str | None
) -> errors.ResponseDecodeError:
    return errors.ResponseDecodeError(
        f"{what} answer is not the documented envelope: {detail}",
        status=raw.status,
        request_id=request_id,
    )


def _dict(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _member(obj: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """``obj[key]`` when both are JSON objects, else None."""
    return _dict(obj.get(key)) if obj is not None else None


@attrs.frozen
class V11Envelope:
    """The v1.1 envelope: ``{"response": {"status": {...}, <item path>: {..., "item_status":
    {...}}}}``, whose item sits at ``item_path`` below ``response`` (validationcode:
    ``("validation_code", "code")``)."""

    item_path: tuple[str, ...]

    def decode(self, raw: RawResponse, now: float, what: str, codes: Codes) -> Decoded:
        """The item of a successful answer, or the typed error of a failed one.

        Errors are looked for in the order the docs give: the HTTP status, then
        ``response.status``, then the item's ``item_status``; an error can arrive inside an
        HTTP 200 with ``success: "false"``. When both levels failed the item's code is
        reported: the request-level code is then only "500 all requests failed" and says less.
        """
        request_id = raw.headers.get(REQUEST_ID_HEADER)
        response = _member(_dict(_load(raw, what, request_id)), "response")
        status = _member(response, "status")
        item = response
        for key in self.item_path:
            item = _member(item, key)
        item_status = _member(item, "item_status")

        failed = next(
            (
                s
                for s in (item_status, status)
                if s is not None and _flag(s.get("success")) is False
            ),
            None,
        )
        if not 200 <= raw.status < 300 or failed is not None:
            raise _api_error(raw, failed or item_status or status or {}, request_id, now, codes)
        if response is None:
            raise _shape_error(what, "no 'response' object", raw, request_id)
        if item is None:
            path = ".".join(("response", *self.item_path))
            raise _shape_error(what, f"no '{path}' object", raw, request_id)
        return Decoded(item, request_id)


@attrs.frozen
class V2Envelope:
    """The v2 envelope: ``{"data": [{...}], "warnings": [...], "errors": [...]}``."""

    def decode(self, raw: RawResponse, now: float, what: str, codes: Codes) -> Decoded:
        """``data[0]`` of a successful answer with the envelope's ``warnings``, or the typed
        error of a failed one.

        ``errors`` can arrive without ``data`` and with a 2xx status; any entry in it makes
        the call fail with the first entry's code, since a verdict next to an error cannot be
        trusted.
        """
        request_id = raw.headers.get(REQUEST_ID_HEADER)
        doc = _dict(_load(raw, what, request_id))
        error_list = doc.get("errors") if doc is not None else None
        has_errors = isinstance(error_list, list) and bool(error_list)
        if not 200 <= raw.status < 300 or has_errors:
            entry = error_list[0] if has_errors else None  # type: ignore[index]
            # An entry that is not the documented object still says the call failed.
            first = _dict(entry) or ({"message": str(entry)} if entry is not None else {})
            raise _api_error(raw, first, request_id, now, codes)
        if doc is None:
            raise _shape_error(what, "the body is not a JSON object", raw, request_id)
        data = doc.get("data")
        item = _dict(data[0]) if isinstance(data, list) and data else None
        if item is None:
            raise _shape_error(what, "no 'data[0]' object and no errors", raw, request_id)
        warnings = doc.get("warnings")
        return Decoded(item, request_id, warnings if isinstance(warnings, list) else [])


Envelope = V11Envelope | V2Envelope
