"""The points endpoints, reached as ``client.points``.

* :meth:`Points.issue_validation_code`: ``GET v1.1/points/validationcode``, the OTP a
  customer must quote before points are redeemed. Issuing again within the org's validity
  period re-sends the same code, so a retried call is safe.
* :meth:`Points.is_transferrable`: ``POST v2/points/isTransferrable``, whether points can move
  from one customer to another (needs the org config ``ALLOW_POINTS_TRANSFER``).

Each has a ``*_many`` twin for bulk runs that yields one :class:`Outcome` per input.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable
from typing import TYPE_CHECKING, TypeVar

from ._bulk import CallTrace, fan_out
from ._endpoints import IS_TRANSFERRABLE, VALIDATION_CODE, Endpoint
from ._validate import whole_number
from .errors import CapillaryError, InvalidRequestError
from .models import (
    Identifier,
    Outcome,
    TransferCheck,
    TransferCheckRequest,
    ValidationCode,
    ValidationCodeRequest,
)

if TYPE_CHECKING:
    from ._client import CapillaryClient

__all__ = ["Points"]

Q = TypeVar("Q")
T = TypeVar("T")


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

    def issue_validation_code_many(
        self,
        requests: Iterable[ValidationCodeRequest] | AsyncIterable[ValidationCodeRequest],
        *,
        concurrency: int = 64,
        ordered: bool = False,
    ) -> AsyncIterator[Outcome[ValidationCodeRequest, ValidationCode]]:
        """Issue validation codes for many customers; see :meth:`is_transferrable_many`."""
        return self._many(VALIDATION_CODE, requests, concurrency, ordered)

    def is_transferrable_many(
        self,
        requests: Iterable[TransferCheckRequest] | AsyncIterable[TransferCheckRequest],
        *,
        concurrency: int = 64,
        ordered: bool = False,
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
        """
        return self._many(IS_TRANSFERRABLE, requests, concurrency, ordered)

    def _many(
        self,
        endpoint: Endpoint[Q, T],
        requests: Iterable[Q] | AsyncIterable[Q],
        concurrency: int,
        ordered: bool,
    ) -> AsyncGenerator[Outcome[Q, T], None]:
        concurrency = whole_number(concurrency, "concurrency")
        kind = endpoint.request_type
        if not isinstance(requests, (Iterable, AsyncIterable)) or isinstance(
            requests, (str, bytes)
        ):
            raise InvalidRequestError(f"requests must be an iterable of {kind.__name__}")
        client = self._client

        async def run(request: Q) -> Outcome[Q, T]:
            loop = asyncio.get_running_loop()
            start = loop.time()
            trace = CallTrace()
            try:
                if not isinstance(request, kind):
                    raise InvalidRequestError(
                        f"expected a {kind.__name__}, got {type(request).__name__}"
                    )
                value = await client._call(endpoint, request, trace)
            except CapillaryError as exc:
                return Outcome(
                    request=request, error=exc, attempts=trace.attempts, elapsed=loop.time() - start
                )
            return Outcome(
                request=request, value=value, attempts=trace.attempts, elapsed=loop.time() - start
            )

        return client._track(fan_out(requests, run, concurrency=concurrency, ordered=ordered))
