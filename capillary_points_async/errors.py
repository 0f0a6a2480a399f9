"""The exception tree of capillary-points-async.

Everything the client raises on purpose derives from :class:`CapillaryError`::

    CapillaryError
     +-- InvalidRequestError (ValueError)  bad arguments; nothing was sent
     +-- TransportError                   connection failed, reset, or timed out
     |    +-- OutcomeUnknownError         redeem/transfer may have been applied: check first
     +-- ResponseDecodeError              body is not JSON, or not the documented shape
     +-- APIError                         .status .code .message .request_id .retry_after .retryable
          +-- AuthenticationError         HTTP 401, envelope code 401, a failed OAuth token
          +-- RateLimitedError            HTTP 429, v1.1 code 517
          +-- ServerError                 HTTP 5xx, v2 code 521 (retryable)
          +-- CustomerNotFoundError       816 (v1.1), 8015 (v2)
          +-- InvalidProgramError         885
          +-- InvalidIdentifierError      8013, 802, 434, 419 (a merged customer)
          +-- GroupTransferMismatchError  3316
          +-- InvalidValidationCodeError  808; OTP codes 604, 605, 876, 9001
          +-- InsufficientPointsError     803, 804, 805, 813, 818; transfer 422
          +-- TransferNotAllowedError     901 not eligible, 903 limit exceeded, 904 locked

The Redis-backed limiter adds ``RateLimiterUnavailableError`` and ``RateLimiterTimeoutError``
(both ``CapillaryError``) in :mod:`capillary_points_async.redis`.

An API answer with a code the table in ``_protocol`` does not know becomes a plain
:class:`APIError` that still carries the code, so nothing the server said is lost.

No message or ``repr`` built here ever contains credentials: errors are made from the
response's status, code, message and request id only.
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "AuthenticationError",
    "CapillaryError",
    "CustomerNotFoundError",
    "GroupTransferMismatchError",
    "InsufficientPointsError",
    "InvalidIdentifierError",
    "InvalidProgramError",
    "InvalidRequestError",
    "InvalidValidationCodeError",
    "OutcomeUnknownError",
    "RateLimitedError",
    "ResponseDecodeError",
    "ServerError",
    "TransferNotAllowedError",
    "TransportError",
]


class CapillaryError(Exception):
    """Base class of every error this library raises on purpose."""


class InvalidRequestError(CapillaryError, ValueError):
    """An argument is invalid; the request was not sent.

    Also a :class:`ValueError`, so code that validates input generically catches it.
    """


class TransportError(CapillaryError):
    """The request could not be completed on the wire: connection refused or reset, DNS
    failure, or the per-attempt timeout. Retryable where the endpoint may be re-sent.

    Attributes:
        connect_failed: True when no connection was made (refused, DNS, TLS handshake), so
            the server never saw the request; False when it may have.
    """

    retryable = True

    def __init__(
        self, message: str, *, method: str = "", path: str = "", connect_failed: bool = False
    ) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.connect_failed = connect_failed


class OutcomeUnknownError(TransportError):
    """A call that moves points (redeem, transfer) may have been applied, but no answer says
    so: a timeout or reset after the request was sent, a 5xx or gateway page, or an answer
    that could not be read. It is never re-sent: a duplicate redemption is worse than an
    error. Check the customer's points (or your own records) before trying again.

    Attributes:
        request: the request object of the call (``RedeemRequest``, ``TransferRequest``).
        request_id: Capillary's ``X-Cap-Requestid`` when an answer carried one, else None.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        request: object,
        request_id: str | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.request = request
        self.request_id = request_id

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} (request id {self.request_id})" if self.request_id else text


class ResponseDecodeError(CapillaryError):
    """A 2xx response whose body is not JSON, not the documented envelope or shape, or larger
    than the client's ``max_response_bytes``.

    ``retryable`` is True when the body is not JSON at all: a proxy or a reset that cut the
    body short looks exactly like that, so an endpoint that may be re-sent treats it as a
    transport fault. A well-formed answer of the wrong shape or size would come back the same
    and is not retried.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.request_id = request_id
        self.retryable = retryable

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} (request id {self.request_id})" if self.request_id else text


class APIError(CapillaryError):
    """Capillary answered with an error.

    Attributes:
        status: the HTTP status of the response (200 for errors inside a 200 envelope).
        code: Capillary's own code (``816``, ``8015``...) or the HTTP status when the body had none.
        message: the server's message, or the HTTP reason when the body had none.
        request_id: the ``X-Cap-Requestid`` header, the id Capillary support asks for.
        retry_after: seconds the server asked us to wait (``Retry-After``), if it said.
        retryable: whether sending the same request again may succeed.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after

    def __str__(self) -> str:
        parts = [f"HTTP {self.status}"]
        if self.code is not None and self.code != self.status:
            parts.append(f"code {self.code}")
        if self.request_id:
            parts.append(f"request id {self.request_id}")
        return f"{self.message} ({', '.join(parts)})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, status={self.status!r}, "
            f"code={self.code!r}, request_id={self.request_id!r}, "
            f"retry_after={self.retry_after!r})"
        )


class AuthenticationError(APIError):
    """Wrong till code or password (HTTP 401). Never retried."""


class RateLimitedError(APIError):
    """The account's quota is exhausted (HTTP 429, v1.1 code 517). Retried after
    ``retry_after`` when that fits :attr:`RetryPolicy.max_retry_after`."""

    retryable = True


class ServerError(APIError):
    """Capillary failed (HTTP 5xx) or is busy with the same customer (v2 code 521). Retried."""

    retryable = True


class CustomerNotFoundError(APIError):
    """No customer of the organisation has the identifier (816 on v1.1, 8015 on v2)."""


class InvalidProgramError(APIError):
    """The program id is unknown to the organisation (885)."""


class InvalidIdentifierError(APIError):
    """The identifier's type or value was rejected (8013, 802, 434)."""


class GroupTransferMismatchError(APIError):
    """A group-program transfer was asked for a program that is not a group program (3316)."""


class InvalidValidationCodeError(APIError):
    """The validation code (OTP) is wrong, expired or already used (808; the OTP answers
    604, 605, 876 and 9001). Issue a new code; re-sending the same one cannot succeed."""


class InsufficientPointsError(APIError):
    """The customer has fewer redeemable or transferable points than asked for (803, 804,
    805, 813, 818; 422 from transfer)."""


class TransferNotAllowedError(APIError):
    """The program's rules refuse this transfer: the customer is not eligible (901), a
    transfer limit is exceeded (903), or the points are locked (904)."""
