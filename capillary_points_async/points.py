"""The points endpoints, reached as ``client.points``.

* :meth:`Points.issue_validation_code`: ``GET v1.1/points/validationcode``, the OTP a
  customer must quote before points are redeemed. Issuing again within the org's validity
  period re-sends the same code, so a retried call is safe.
* :meth:`Points.is_redeemable`: ``GET v1.1/points/isredeemable``, whether a customer can
  redeem points now (optionally issuing the code).
* :meth:`Points.redeem`: ``POST v1.1/points/redeem``, redeem points quoting the code.
* :meth:`Points.is_transferrable`: ``POST v2/points/isTransferrable``, whether points can move
  from one customer to another (needs the org config ``ALLOW_POINTS_TRANSFER``).
* :meth:`Points.transfer`: ``POST v2/points/transfer``, move them.

Each has a ``*_many`` twin for bulk runs that yields one :class:`Outcome` per input.

redeem and transfer move points: they are never sent twice. The client re-sends them only
when the server provably did not act (no connection, a 429, v2's 521, a 401 before an OAuth
refresh); when it may have acted but no answer says so, the call raises
:class:`OutcomeUnknownError`: check before you retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable
from typing import TYPE_CHECKING, TypeVar

from ._bulk import CallTrace, fan_out
from ._converter import builder
from ._endpoints import (
    IS_REDEEMABLE,
    IS_TRANSFERRABLE,
    REDEEM,
    TRANSFER,
    VALIDATION_CODE,
    Endpoint,
)
from ._outage import is_outage_error
from ._retry import provably_not_applied
from ._validate import number, whole_number
from .errors import CapillaryError, InvalidRequestError
from .models import (
    Identifier,
    Outcome,
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

if TYPE_CHECKING:
    from ._client import CapillaryClient

__all__ = ["Points"]

Q = TypeVar("Q")
T = TypeVar("T")

_outcome = builder(Outcome)  # Outcome(...), for a third of the instructions


class Points:
    """The points endpoints of one :class:`CapillaryClient`."""

    __slots__ = ("_client",)

    def __init__(self, client: CapillaryClient) -> None:
        self._client = client

    async def issue_validation_code(
        self, identifier: Identifier, points: int | None = None
    ) -> ValidationCode:
        """Issue (or re-send) the validation code a customer needs to redeem points.

        Args:
            identifier: the customer, e.g. ``Identifier.mobile("919777785205")``.
            points: the points to be redeemed with the code; a positive whole number.

        Returns:
            The echoed customer identifiers, points and Capillary's item status. The code
            itself goes to the customer by SMS or e-mail, never to the caller.

        Raises:
            InvalidRequestError: bad arguments; nothing was sent.
            CustomerNotFoundError: no such customer (816).
            APIError: any other answer Capillary gave; TransportError: the wire failed.
        """
        request = ValidationCodeRequest(identifier, points)
        return await self._client._call(VALIDATION_CODE, request)

    async def is_transferrable(
        self,
        *,
        from_customer: Identifier,
        to_customer: Identifier,
        points: int,
        program_id: int | None = None,
        group_program_transfer: bool = False,
        issue_otp: bool = False,
    ) -> TransferCheck:
        """Check whether ``points`` can move from one customer to another.

        Args:
            from_customer, to_customer: the two customers' identifiers.
            points: a positive whole number (Capillary: 807 "whole numbers only").
            program_id: the loyalty program; the org's default when None.
            group_program_transfer: a group-program transfer (3316 when the program is not).
            issue_otp: also send the from-customer an OTP for the later transfer.

        Returns:
            The verdict (``transferrable``) and both customers as Capillary resolved them.
            Points added at customer creation are not transferable; a False verdict is an
            answer, not an error.

        Raises:
            InvalidRequestError: bad arguments; nothing was sent.
            CustomerNotFoundError (8015), InvalidProgramError (885), InvalidIdentifierError
            (8013), GroupTransferMismatchError (3316), other APIError, TransportError.
        """
        request = TransferCheckRequest(
            from_customer=from_customer,
            to_customer=to_customer,
            points=points,
            program_id=program_id,
            group_program_transfer=group_program_transfer,
            issue_otp=issue_otp,
        )
        return await self._client._call(IS_TRANSFERRABLE, request)

    async def is_redeemable(
        self,
        identifier: Identifier,
        points: int,
        *,
        program_id: int | None = None,
        validation_code: str | None = None,
        issue_otp: bool = False,
    ) -> Redeemability:
        """Check whether a customer can redeem ``points`` now.

        Args:
            identifier: the customer.
            points: a positive whole number.
            program_id: the loyalty program; the org's default when None.
            validation_code: a code already issued, to check it as well.
            issue_otp: also issue the validation code when the points are redeemable.

        Returns:
            The verdict (``redeemable``), what the points are worth and Capillary's item
            status. Sent again safely: it moves nothing.

        Raises:
            InvalidRequestError: bad arguments; nothing was sent.
            InsufficientPointsError, InvalidValidationCodeError, CustomerNotFoundError, other
            APIError, TransportError.
        """
        request = RedeemabilityRequest(
            identifier,
            points,
            program_id=program_id,
            validation_code=validation_code,
            issue_otp=issue_otp,
        )
        return await self._client._call(IS_REDEEMABLE, request)

    async def redeem(
        self,
        identifier: Identifier,
        *,
        points: int,
        validation_code: str,
        transaction_number: str | None = None,
        program_id: int | None = None,
        notes: str | None = None,
    ) -> Redemption:
        """Redeem a customer's points, quoting the validation code the customer received.

        Args:
            identifier: the customer.
            points: a positive whole number.
            validation_code: the code from :meth:`issue_validation_code` (or
                :meth:`is_redeemable` with ``issue_otp``); a code is consumed by the call that
                uses it.
            transaction_number: the bill the points are redeemed on.
            program_id: the loyalty program; the org's default when None.
            notes: recorded with the redemption.

        Returns:
            The redemption: ``redemption_id``, ``points_redeemed``, the ``balance`` after it.

        Raises:
            InvalidRequestError: bad arguments; nothing was sent.
            OutcomeUnknownError: it may have been applied (timeout or reset after sending, a
                5xx, an unreadable answer); it was not re-sent. Check before trying again.
            InvalidValidationCodeError (808), InsufficientPointsError, CustomerNotFoundError,
            other APIError, TransportError (nothing reached Capillary).
        """
        request = RedeemRequest(
            identifier,
            points=points,
            validation_code=validation_code,
            transaction_number=transaction_number,
            program_id=program_id,
            notes=notes,
        )
        return await self._client._call(REDEEM, request)

    async def transfer(
        self,
        *,
        from_customer: Identifier,
        to_customer: Identifier,
        points: int,
        program_id: int | None = None,
        code: str | None = None,
        notes: str | None = None,
    ) -> Transfer:
        """Move ``points`` from one customer to another (Capillary answers HTTP 201).

        Args:
            from_customer, to_customer: the two customers.
            points: a positive whole number.
            program_id: the loyalty program; the org's default when None.
            code: the OTP the sender received, when the org asks for one (issued by
                :meth:`is_transferrable` with ``issue_otp=True``).
            notes: recorded with the transfer.

        Returns:
            The transfer: ``points_transferred``, ``deducted_points`` and their breakup.

        Raises:
            InvalidRequestError: bad arguments; nothing was sent.
            OutcomeUnknownError: it may have been applied; it was not re-sent. Check first.
            InvalidValidationCodeError, InsufficientPointsError, TransferNotAllowedError
            (901, 903, 904), CustomerNotFoundError, other APIError, TransportError.
        """
        request = TransferRequest(
            from_customer=from_customer,
            to_customer=to_customer,
            points=points,
            program_id=program_id,
            code=code,
            notes=notes,
        )
        return await self._client._call(TRANSFER, request)

    def issue_validation_code_many(
        self,
        requests: Iterable[ValidationCodeRequest] | AsyncIterable[ValidationCodeRequest],
        *,
        concurrency: int = 64,
        ordered: bool = False,
        max_outage: float | None = 600.0,
    ) -> AsyncIterator[Outcome[ValidationCodeRequest, ValidationCode]]:
        """Issue validation codes for many customers; see :meth:`is_transferrable_many`."""
        return self._many(VALIDATION_CODE, requests, concurrency, ordered, max_outage)

    def is_transferrable_many(
        self,
        requests: Iterable[TransferCheckRequest] | AsyncIterable[TransferCheckRequest],
        *,
        concurrency: int = 64,
        ordered: bool = False,
        max_outage: float | None = 600.0,
    ) -> AsyncIterator[Outcome[TransferCheckRequest, TransferCheck]]:
        """Run many transferability checks, ``concurrency`` at a time, under the rate limit.

        Yields exactly one :class:`Outcome` per input, as they finish (``ordered=True``: in
        input order). An error never stops the batch or escapes the iterator: it is the
        outcome's ``error``; an input that is not a :class:`TransferCheckRequest` becomes an
        :class:`InvalidRequestError` outcome. The input is read lazily, so memory stays flat
        for any number of inputs; an exception the input raises itself is re-raised after the
        outcomes of the inputs already started. Leaving the loop early cancels the calls in
        flight; use ``contextlib.aclosing(...)`` to have that happen at once rather than when
        the iterator is collected (closing the client does it too).

        An outage (every attempt of a call fails at the transport or with a 5xx) pauses the
        endpoint instead of failing the inputs: one input at a time probes it, with backoff
        from 1 s to 30 s, the others wait, and all go on when it answers. Inputs fail with the
        last error only once the outage has lasted ``max_outage`` seconds (None or 0: they
        fail at once, as single calls do while the endpoint is known to be down).
        """
        return self._many(IS_TRANSFERRABLE, requests, concurrency, ordered, max_outage)

    def is_redeemable_many(
        self,
        requests: Iterable[RedeemabilityRequest] | AsyncIterable[RedeemabilityRequest],
        *,
        concurrency: int = 64,
        ordered: bool = False,
        max_outage: float | None = 600.0,
    ) -> AsyncIterator[Outcome[RedeemabilityRequest, Redeemability]]:
        """Check redeemability for many customers; see :meth:`is_transferrable_many`."""
        return self._many(IS_REDEEMABLE, requests, concurrency, ordered, max_outage)

    def redeem_many(
        self,
        requests: Iterable[RedeemRequest] | AsyncIterable[RedeemRequest],
        *,
        concurrency: int = 64,
        ordered: bool = False,
        max_outage: float | None = 600.0,
    ) -> AsyncIterator[Outcome[RedeemRequest, Redemption]]:
        """Redeem for many customers; see :meth:`is_transferrable_many`. An input whose
        outcome is :class:`OutcomeUnknownError` may have been redeemed: check it before
        feeding it again."""
        return self._many(REDEEM, requests, concurrency, ordered, max_outage)

    def transfer_many(
        self,
        requests: Iterable[TransferRequest] | AsyncIterable[TransferRequest],
        *,
        concurrency: int = 64,
        ordered: bool = False,
        max_outage: float | None = 600.0,
    ) -> AsyncIterator[Outcome[TransferRequest, Transfer]]:
        """Run many transfers; see :meth:`is_transferrable_many`. An input whose outcome is
        :class:`OutcomeUnknownError` may have been transferred: check it before feeding it
        again."""
        return self._many(TRANSFER, requests, concurrency, ordered, max_outage)

    def _many(
        self,
        endpoint: Endpoint[Q, T],
        requests: Iterable[Q] | AsyncIterable[Q],
        concurrency: int,
        ordered: bool,
        max_outage: float | None,
    ) -> AsyncGenerator[Outcome[Q, T], None]:
        concurrency = whole_number(concurrency, "concurrency")
        if max_outage is not None:
            max_outage = number(max_outage, "max_outage (or None)", unit="of seconds", zero=True)
        kind = endpoint.request_type
        key = endpoint.key
        if not isinstance(requests, (Iterable, AsyncIterable)) or isinstance(
            requests, (str, bytes)
        ):
            raise InvalidRequestError(f"requests must be an iterable of {kind.__name__}")
        client = self._client

        outages = client._outages
        stats = client.stats

        async def run(request: Q) -> Outcome[Q, T]:
            loop = asyncio.get_running_loop()
            start = loop.time()
            trace = CallTrace()
            paused = False
            try:
                if not isinstance(request, kind):
                    raise InvalidRequestError(
                        f"expected a {kind.__name__}, got {type(request).__name__}"
                    )
                while True:
                    probe: bool | None = None  # no max_outage: fail fast like single calls
                    if max_outage:
                        probe = False
                        if outages.down_since(key) is not None:
                            if not paused:
                                paused = True
                                stats.outage_paused += 1
                            error, probe = await outages.wait(key, max_outage)
                            if error is not None:
                                raise error
                    try:
                        value = await client._call(endpoint, request, trace, probe)
                        break
                    except CapillaryError as exc:
                        # An outage pauses the input rather than failing it, as long as it may
                        # be sent again (for redeem and transfer: it provably was not applied).
                        if not (
                            max_outage
                            and is_outage_error(exc)
                            and (endpoint.idempotent or provably_not_applied(exc))
                        ):
                            raise
            except CapillaryError as exc:
                return _outcome(
                    request=request, error=exc, attempts=trace.attempts, elapsed=loop.time() - start
                )
            return _outcome(
                request=request, value=value, attempts=trace.attempts, elapsed=loop.time() - start
            )

        return client._track(fan_out(requests, run, concurrency=concurrency, ordered=ordered))
