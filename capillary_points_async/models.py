"""Request and result types.

Requests (:class:`Identifier`, :class:`ValidationCodeRequest`, :class:`TransferCheckRequest`)
check their arguments when built and raise :class:`~capillary_points_async.InvalidRequestError`,
so bad input never reaches the wire.

Results are frozen, slotted attrs classes with snake_case fields, structured from Capillary's
JSON by the library's own cattrs converter: unknown response fields are ignored, missing
optional ones are ``None`` (or empty), timestamps are timezone-aware :class:`~datetime.datetime`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Final, Generic, TypeVar, cast

import attrs

from ._validate import whole_number
from .errors import CapillaryError, InvalidRequestError

__all__ = [
    "Actor",
    "Attribution",
    "CommChannel",
    "Customer",
    "Identifier",
    "IdentifierType",
    "ItemStatus",
    "LoyaltyInfo",
    "Outcome",
    "Profile",
    "ProfileIdentifier",
    "ProgramDeduction",
    "RedeemRequest",
    "Redeemability",
    "RedeemabilityRequest",
    "Redemption",
    "RedemptionEffect",
    "RedemptionEffects",
    "Transfer",
    "TransferCheck",
    "TransferCheckRequest",
    "TransferParty",
    "TransferRequest",
    "ValidationCode",
    "ValidationCodeRequest",
]

#: Field metadata key naming a result field's JSON key where the class's naming rule (camelCase,
#: or the field name in a class whose ``_wire_case`` is ``"snake"``) does not give it.
WIRE: Final = "capillary_points_async.wire"


def _wire(name: str) -> dict[str, str]:
    """Field metadata: the field's JSON key is ``name``."""
    return {WIRE: name}


# Not in the item: the decoder hands the X-Cap-Requestid header over under this key.
_REQUEST_ID = _wire("request_id")


# pointsTobeTransferred and the v1.1 points parameter are int32 in Capillary's definitions.
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1


# --------------------------------------------------------------------------- requests


class IdentifierType(enum.Enum):
    """How a customer is identified. The value is the v1.1 query parameter's name."""

    MOBILE = "mobile"
    EMAIL = "email"
    EXTERNAL_ID = "external_id"
    CARD_NUMBER = "card_number"
    CARD_EXTERNAL_ID = "card_external_id"
    USER_ID = "id"

    @property
    def v2_type(self) -> str:
        """The spelling v2 bodies use (the newer docs: ``EXTERNALID``, ``CARDNUMBER``...)."""
        return _V2_TYPES[self]


_V2_TYPES = {
    IdentifierType.MOBILE: "MOBILE",
    IdentifierType.EMAIL: "EMAIL",
    IdentifierType.EXTERNAL_ID: "EXTERNALID",
    IdentifierType.CARD_NUMBER: "CARDNUMBER",
    IdentifierType.CARD_EXTERNAL_ID: "CARDEXTERNALID",
    IdentifierType.USER_ID: "ID",
}


def _check_identifier_type(_: object, __: object, value: Any) -> None:
    if not isinstance(value, IdentifierType):
        raise InvalidRequestError(
            f"identifier type must be an IdentifierType, got {value!r}; "
            "use Identifier.mobile(...), Identifier.email(...) and the like"
        )


def _check_identifier_value(_: object, __: object, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(f"identifier value must be a non-empty string, got {value!r}")


@attrs.frozen
class Identifier:
    """One customer identifier, e.g. ``Identifier.mobile("919777785205")``."""

    type: IdentifierType = attrs.field(validator=_check_identifier_type)
    value: str = attrs.field(validator=_check_identifier_value)

    @classmethod
    def mobile(cls, value: str) -> Identifier:
        """A registered mobile number, with or without the country code."""
        return cls(IdentifierType.MOBILE, value)

    @classmethod
    def email(cls, value: str) -> Identifier:
        """A registered e-mail address."""
        return cls(IdentifierType.EMAIL, value)

    @classmethod
    def external_id(cls, value: str) -> Identifier:
        """The brand's own customer id."""
        return cls(IdentifierType.EXTERNAL_ID, value)

    @classmethod
    def card_number(cls, value: str) -> Identifier:
        """A loyalty card number."""
        return cls(IdentifierType.CARD_NUMBER, value)

    @classmethod
    def card_external_id(cls, value: str) -> Identifier:
        """A loyalty card's external id."""
        return cls(IdentifierType.CARD_EXTERNAL_ID, value)

    @classmethod
    def user_id(cls, value: str | int) -> Identifier:
        """Capillary's own customer id (``id`` on v1.1, ``ID`` on v2)."""
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return cls(IdentifierType.USER_ID, cast(str, value))  # the validator rejects non-strings


def _points(value: object) -> int:
    """Validate a points amount: a positive whole number that fits Capillary's int32."""
    if isinstance(value, float) and value.is_integer():  # 10.0 is ten points; 10.5 is not
        value = int(value)
    return whole_number(value, "points", maximum=_INT32_MAX)


def _optional_points(value: object) -> int | None:
    return None if value is None else _points(value)


def _program_id(value: object) -> int | None:
    if value is None:
        return None
    # isTransferrable types programId as int32: a larger id is no program of the org.
    return whole_number(value, "program_id (or None)", maximum=_INT32_MAX)


def _program_id64(value: object) -> int | None:
    # isredeemable, redeem and transfer type the program id int64.
    if value is None:
        return None
    return whole_number(value, "program_id (or None)", maximum=_INT64_MAX)


def _check_text(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    # None means "not given"; an empty string is refused rather than left out of the
    # request, since what a caller hands in is never dropped silently.
    if value is None and attribute.default is None:
        return
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise InvalidRequestError(
            f"{attribute.name} must be a non-empty string of at most 255 characters, got {value!r}"
        )


def _check_identifier(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Identifier):
        raise InvalidRequestError(
            f"{attribute.name} must be an Identifier (e.g. Identifier.mobile('9777785206')), "
            f"got {value!r}"
        )


def _check_flag(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidRequestError(f"{attribute.name} must be True or False, got {value!r}")


@attrs.frozen
class ValidationCodeRequest:
    """Arguments of :meth:`Points.issue_validation_code`, for the bulk ``*_many`` calls."""

    identifier: Identifier = attrs.field(validator=_check_identifier)
    points: int | None = attrs.field(default=None, converter=_optional_points)


@attrs.frozen(kw_only=True, init=False)
class TransferCheckRequest:
    """Arguments of :meth:`Points.is_transferrable`, for the bulk ``*_many`` calls."""

    from_customer: Identifier = attrs.field(validator=_check_identifier)
    to_customer: Identifier = attrs.field(validator=_check_identifier)
    points: int = attrs.field(converter=_points)
    program_id: int | None = attrs.field(default=None, converter=_program_id)
    group_program_transfer: bool = attrs.field(default=False, validator=_check_flag)
    issue_otp: bool = attrs.field(default=False, validator=_check_flag)

    # Built on every single call, so its own __init__ rather than attrs'. Arguments already
    # right, the common case, are recognised in one expression, where attrs' __init__ called
    # each converter and validator, and stored through the slots' own setters, where it called
    # object.__setattr__: 18.8k -> 10.0k instructions (callgrind). Anything else goes through
    # the converters, validators and post-init check above, in the order attrs ran them.
    def __init__(
        self,
        *,
        from_customer: Identifier,
        to_customer: Identifier,
        points: int,
        program_id: int | None = None,
        group_program_transfer: bool = False,
        issue_otp: bool = False,
    ) -> None:
        checked = (
            type(points) is int
            and 0 < points <= _INT32_MAX
            and (program_id is None or (type(program_id) is int and 0 < program_id <= _INT32_MAX))
            and type(from_customer) is Identifier
            and type(to_customer) is Identifier
            and (
                from_customer.value != to_customer.value
                or from_customer.type is not to_customer.type
            )
            and type(group_program_transfer) is bool
            and type(issue_otp) is bool
        )
        if not checked:
            points = _points(points)
            program_id = _program_id(program_id)
        _set_from_customer(self, from_customer)
        _set_to_customer(self, to_customer)
        _set_points(self, points)
        _set_program_id(self, program_id)
        _set_group_program_transfer(self, group_program_transfer)
        _set_issue_otp(self, issue_otp)
        if not checked:
            attrs.validate(self)
            self.__attrs_post_init__()

    def __attrs_post_init__(self) -> None:
        if self.from_customer == self.to_customer:
            # Capillary answers 418 "from and to customer are the same"; say it before sending.
            raise InvalidRequestError("from_customer and to_customer are the same identifier")


(
    _set_from_customer,
    _set_to_customer,
    _set_points,
    _set_program_id,
    _set_group_program_transfer,
    _set_issue_otp,
) = (
    TransferCheckRequest.__dict__[field.name].__set__
    for field in attrs.fields(TransferCheckRequest)
)


@attrs.frozen
class RedeemabilityRequest:
    """Arguments of :meth:`Points.is_redeemable`, for :meth:`Points.is_redeemable_many`."""

    identifier: Identifier = attrs.field(validator=_check_identifier)
    points: int = attrs.field(converter=_points)
    program_id: int | None = attrs.field(default=None, kw_only=True, converter=_program_id64)
    validation_code: str | None = attrs.field(default=None, kw_only=True, validator=_check_text)
    issue_otp: bool = attrs.field(default=False, kw_only=True, validator=_check_flag)


@attrs.frozen
class RedeemRequest:
    """Arguments of :meth:`Points.redeem`, for :meth:`Points.redeem_many`."""

    identifier: Identifier = attrs.field(validator=_check_identifier)
    points: int = attrs.field(kw_only=True, converter=_points)
    validation_code: str = attrs.field(kw_only=True, validator=_check_text)
    transaction_number: str | None = attrs.field(default=None, kw_only=True, validator=_check_text)
    program_id: int | None = attrs.field(default=None, kw_only=True, converter=_program_id64)
    notes: str | None = attrs.field(default=None, kw_only=True, validator=_check_text)


@attrs.frozen(kw_only=True)
class TransferRequest:
    """Arguments of :meth:`Points.transfer`, for :meth:`Points.transfer_many`."""

    from_customer: Identifier = attrs.field(validator=_check_identifier)
    to_customer: Identifier = attrs.field(validator=_check_identifier)
    points: int = attrs.field(converter=_points)
    program_id: int | None = attrs.field(default=None, converter=_program_id64)
    code: str | None = attrs.field(default=None, validator=_check_text)
    notes: str | None = attrs.field(default=None, validator=_check_text)

    def __attrs_post_init__(self) -> None:
        if self.from_customer == self.to_customer:
            # Capillary answers 418 "from and to customer are the same"; say it before sending.
            raise InvalidRequestError("from_customer and to_customer are the same identifier")


# --------------------------------------------------------------------------- results
# Field docs name the JSON key where it is not the field name in camelCase.


@attrs.frozen
class ItemStatus:
    """Outcome of one item of a v1.1 call (``item_status``)."""

    _wire_case: ClassVar[str] = "snake"

    success: bool
    code: int
    message: str = ""


@attrs.frozen(kw_only=True)
class ValidationCode:
    """An issued validation code (the code itself goes to the customer, never to the caller).

    Attributes:
        mobile, email, external_id, user_id: the customer's identifiers as Capillary echoes them.
        points: the points the code is issued for, as echoed.
        item_status: Capillary's item outcome, e.g. ``Validation Code Issued by SMS``.
        request_id: the ``X-Cap-Requestid`` response header.
    """

    _wire_case: ClassVar[str] = "snake"

    item_status: ItemStatus
    mobile: str | None = None
    email: str | None = None
    external_id: str | None = None
    user_id: str | None = None
    points: int | None = None
    request_id: str | None = attrs.field(default=None, metadata=_REQUEST_ID)


@attrs.frozen(kw_only=True)
class Actor:
    """Who created or modified a record (``createdBy``/``modifiedBy``), often a till."""

    id: int | None = None
    code: str | None = None
    name: str | None = None
    type: str | None = None
    reference_id: int | None = None
    default: bool | None = None


@attrs.frozen(kw_only=True)
class Attribution:
    """Creation and modification stamps of a profile or loyalty record."""

    create_date: datetime | None = None
    created_by: Actor | None = None
    modified_by: Actor | None = None
    modified_date: datetime | None = None


@attrs.frozen
class ProfileIdentifier:
    """An identifier as profiles report it: ``type`` in Capillary's response spelling
    (``mobile``, ``email``, ``externalId``, ``cardNumber``...)."""

    type: str
    value: str


@attrs.frozen(kw_only=True)
class CommChannel:
    """A channel the customer can be reached on."""

    type: str | None = None
    value: str | None = None
    primary: bool | None = None
    verified: bool | None = None
    meta: Mapping[str, Any] = attrs.field(factory=dict)
    attributes: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Profile:
    """One profile of a customer (``profiles[]``)."""

    first_name: str | None = None
    last_name: str | None = None
    identifiers: tuple[ProfileIdentifier, ...] = ()
    identifiers_all: tuple[ProfileIdentifier, ...] = ()
    comm_channels: tuple[CommChannel, ...] = ()
    source: str | None = None
    user_id: int | None = None
    account_id: str | None = None
    attribution: Attribution | None = None
    auto_update_time: datetime | None = None
    fields: Mapping[str, Any] = attrs.field(factory=dict)
    all_fields: Mapping[str, Any] = attrs.field(factory=dict)
    conflicting_profile_list: tuple[Any, ...] = ()


@attrs.frozen(kw_only=True)
class LoyaltyInfo:
    """A customer's loyalty record (``loyaltyInfo``)."""

    loyalty_type: str | None = None
    lifetime_purchases: float | None = None
    attribution_v2: Attribution | None = None


@attrs.frozen(kw_only=True)
class Customer:
    """A customer as v2 reports it (``transferFrom``/``transferTo``)."""

    id: int | None = None
    profiles: tuple[Profile, ...] = ()
    loyalty_info: LoyaltyInfo | None = None
    segments: Mapping[str, Any] = attrs.field(factory=dict)
    extended_fields: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class TransferCheck:
    """Whether points can move from one customer to another.

    Attributes:
        transferrable: Capillary's verdict.
        points: the points checked (``pointsTobeTransferred``).
        transfer_from, transfer_to: the two customers as Capillary resolved them.
        warnings: the envelope's ``warnings``, as sent.
        request_id: the ``X-Cap-Requestid`` response header.
    """

    transferrable: bool
    points: float = attrs.field(metadata=_wire("pointsTobeTransferred"))
    transfer_from: Customer
    transfer_to: Customer
    warnings: tuple[Any, ...] = ()
    request_id: str | None = attrs.field(default=None, metadata=_REQUEST_ID)


@attrs.frozen(kw_only=True)
class Redeemability:
    """Whether a customer can redeem points now (``response.points.redeemable``).

    Attributes:
        redeemable: Capillary's verdict (``is_redeemable``).
        points: the points asked about, as echoed.
        points_redeem_value: what the points are worth in the org's currency.
        points_redeem_local_value: the same in the store's local currency.
        input_type: ``points`` (or ``currency`` when asked in currency).
        points_currency_ratio: points per currency unit.
        mobile, email, external_id: the customer's identifiers as echoed.
        item_status: Capillary's item outcome (800 "Points can be redeemed").
        request_id: the ``X-Cap-Requestid`` response header.
    """

    _wire_case: ClassVar[str] = "snake"

    redeemable: bool = attrs.field(metadata=_wire("is_redeemable"))
    item_status: ItemStatus
    points: int | None = None
    points_redeem_value: float | None = None
    points_redeem_local_value: float | None = None
    input_type: str | None = None
    points_currency_ratio: float | None = None
    mobile: str | None = None
    email: str | None = None
    external_id: str | None = None
    request_id: str | None = attrs.field(default=None, metadata=_REQUEST_ID)


@attrs.frozen(kw_only=True)
class RedemptionEffect:
    """One side effect of a redemption (``side_effects.effect[]``): the points entry it made."""

    _wire_case: ClassVar[str] = "snake"

    id: int | None = None
    type: str | None = None
    num_points: float | None = None
    currency_value: float | None = None
    validation_code: str | None = None
    points_redemption_summary_id: str | None = None
    redeemed_on_bill_number: str | None = None
    redeemed_on_bill_id: int | None = None
    case_value: str | None = None


@attrs.frozen(kw_only=True)
class RedemptionEffects:
    """``side_effects`` of a redemption."""

    _wire_case: ClassVar[str] = "snake"

    effect: tuple[RedemptionEffect, ...] = ()


@attrs.frozen(kw_only=True)
class Redemption:
    """Points redeemed (``response.responses.points``).

    Attributes:
        redemption_id: Capillary's id of the redemption.
        points_redeemed: the points taken from the customer.
        redeemed_value, redeemed_local_value: what they were worth (org and local currency).
        balance: the customer's redeemable points after the redemption.
        redemption_purpose: as recorded (often empty).
        side_effects: the points entries made, with the validation code quoted.
        mobile, email, external_id, user_id: the customer as echoed.
        item_status: Capillary's item outcome (800 "Points Redeemed").
        request_id: the ``X-Cap-Requestid`` response header.
    """

    _wire_case: ClassVar[str] = "snake"

    item_status: ItemStatus
    redemption_id: str | None = None
    points_redeemed: int | None = None
    redeemed_value: float | None = None
    redeemed_local_value: float | None = None
    balance: float | None = None
    redemption_purpose: str | None = None
    side_effects: RedemptionEffects | None = None
    mobile: str | None = None
    email: str | None = None
    external_id: str | None = None
    user_id: str | None = None
    request_id: str | None = attrs.field(default=None, metadata=_REQUEST_ID)


@attrs.frozen(kw_only=True)
class TransferParty:
    """One side of a transfer (``transferredFrom``/``transferredTo``)."""

    user_id: int | None = None
    first_name: str | None = None
    last_name: str | None = None


@attrs.frozen(kw_only=True)
class ProgramDeduction:
    """What a transfer took from one earning program
    (``pointsTransferBreakupByEarningPrograms[]``)."""

    program_id: int | None = None
    deducted_points: float | None = None
    program_current_points: float | None = None


@attrs.frozen(kw_only=True)
class Transfer:
    """Points moved from one customer to another (``data[0]`` of an HTTP 201).

    Attributes:
        points_transferred: the points the receiver got.
        deducted_points: the points taken from the sender, summed over ``breakup``.
        breakup: the deduction per earning program, with each program's balance after it.
        transfer_id, transfer_type: Capillary's id and kind (``DEDUCTION``) of the transfer.
        transferred_at: when it happened (``pointsTransferDateISO``); ``points_transfer_date``
            is the same moment as the cluster's local ``YYYY-MM-DD HH:MM:SS`` text.
        transferred_from, transferred_to: the two customers, with their user ids.
        from_entity_id, from_entity_type, to_entity_id, to_entity_type: the same as entities.
        notes, program_name: as recorded.
        warnings: the envelope's ``warnings``, as sent.
        request_id: the ``X-Cap-Requestid`` response header.
    """

    points_transferred: float
    transfer_id: int | None = None
    transfer_type: str | None = None
    transferred_at: datetime | None = attrs.field(
        default=None, metadata=_wire("pointsTransferDateISO")
    )
    points_transfer_date: str | None = None
    transferred_from: TransferParty | None = None
    transferred_to: TransferParty | None = None
    from_entity_id: int | None = None
    from_entity_type: str | None = None
    to_entity_id: int | None = None
    to_entity_type: str | None = None
    notes: str | None = None
    program_name: str | None = None
    breakup: tuple[ProgramDeduction, ...] = attrs.field(
        default=(), metadata=_wire("pointsTransferBreakupByEarningPrograms")
    )
    warnings: tuple[Any, ...] = ()
    request_id: str | None = attrs.field(default=None, metadata=_REQUEST_ID)

    @property
    def deducted_points(self) -> float:
        """The points taken from the sender: the sum of ``breakup``."""
        return sum(part.deducted_points or 0.0 for part in self.breakup)


RequestT = TypeVar("RequestT")
ValueT = TypeVar("ValueT")


@attrs.frozen(kw_only=True)
class Outcome(Generic[RequestT, ValueT]):
    """What became of one input of a bulk call: its value or its error, never neither.

    Attributes:
        request: the input, as given.
        value: the result when the call succeeded, else ``None``.
        error: the error when it failed, else ``None``.
        attempts: how many times the request was sent (0 when it failed before sending).
        elapsed: seconds from the first attempt's start to the outcome, waits included.
    """

    request: RequestT
    value: ValueT | None = None
    error: CapillaryError | None = None
    attempts: int = 0
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the call succeeded."""
        return self.error is None
