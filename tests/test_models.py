"""Request objects check their arguments when built (InvalidRequestError, nothing sent);
result models are frozen, slotted attrs classes."""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from capillary_points_async import (
    CapillaryError,
    Customer,
    Identifier,
    IdentifierType,
    InvalidRequestError,
    ItemStatus,
    Outcome,
    TransferCheck,
    TransferCheckRequest,
    ValidationCode,
    ValidationCodeRequest,
)

INT32_MAX = 2**31 - 1
FROM = Identifier.mobile("9777785206")
TO = Identifier.mobile("9777785207")

BAD_POINTS = [
    0,
    -1,
    -100,  # what the validationcode page's own curl sends
    0.0,
    -0.0,
    math.nan,
    math.inf,
    -math.inf,
    True,
    False,
    "100",
    "",
    1.5,
    0.5,
    INT32_MAX + 1,
    float(INT32_MAX + 1),
    2**63,
    [1],
    b"1",
]


def transfer(**changes: Any) -> TransferCheckRequest:
    arguments: dict[str, Any] = {"from_customer": FROM, "to_customer": TO, "points": 1}
    arguments.update(changes)
    return TransferCheckRequest(**arguments)


# --------------------------------------------------------------------------- points


@pytest.mark.parametrize("points", BAD_POINTS, ids=repr)
def test_bad_points_are_rejected_by_both_requests(points: Any) -> None:
    with pytest.raises(InvalidRequestError) as info:
        transfer(points=points)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, CapillaryError)
    assert "points" in str(info.value)
    with pytest.raises(InvalidRequestError):
        ValidationCodeRequest(Identifier.mobile("919777785205"), points=points)


@pytest.mark.parametrize(
    ("points", "expected"),
    [(1, 1), (5, 5), (5.0, 5), (100, 100), (INT32_MAX, INT32_MAX), (float(INT32_MAX), INT32_MAX)],
)
def test_good_points_are_kept_as_ints(points: Any, expected: int) -> None:
    for value in (transfer(points=points).points, ValidationCodeRequest(FROM, points).points):
        assert value == expected
        assert type(value) is int


def test_validation_code_points_are_optional() -> None:
    assert ValidationCodeRequest(FROM).points is None
    assert ValidationCodeRequest(FROM, points=None).points is None


def test_transfer_points_are_required() -> None:
    with pytest.raises(TypeError):
        TransferCheckRequest(from_customer=FROM, to_customer=TO)  # type: ignore[call-arg]
    with pytest.raises(InvalidRequestError):
        transfer(points=None)


@given(st.integers(min_value=1, max_value=INT32_MAX))
def test_any_int32_positive_points_are_accepted_unchanged(points: int) -> None:
    assert transfer(points=points).points == points
    assert ValidationCodeRequest(FROM, points=points).points == points


@given(
    st.one_of(
        st.integers(max_value=0),
        st.integers(min_value=INT32_MAX + 1),
        st.floats(max_value=0.0),
        st.floats().filter(lambda x: not x.is_integer()),
    )
)
def test_any_non_positive_or_out_of_range_points_are_rejected(points: float) -> None:
    with pytest.raises(InvalidRequestError):
        transfer(points=points)


# --------------------------------------------------------------------------- identifiers


@pytest.mark.parametrize(
    ("factory", "kind"),
    [
        (Identifier.mobile, IdentifierType.MOBILE),
        (Identifier.email, IdentifierType.EMAIL),
        (Identifier.external_id, IdentifierType.EXTERNAL_ID),
        (Identifier.card_number, IdentifierType.CARD_NUMBER),
        (Identifier.card_external_id, IdentifierType.CARD_EXTERNAL_ID),
        (Identifier.user_id, IdentifierType.USER_ID),
    ],
)
def test_identifier_factories(factory: Any, kind: IdentifierType) -> None:
    identifier = factory("434547")
    assert identifier == Identifier(kind, "434547")
    assert (identifier.type, identifier.value) == (kind, "434547")
    for bad in ("", " ", "\t\n", None, 123.0, b"434547"):
        with pytest.raises(InvalidRequestError, match="identifier value"):
            factory(bad)


def test_user_id_accepts_an_int_but_not_a_bool() -> None:
    assert Identifier.user_id(564955302) == Identifier(IdentifierType.USER_ID, "564955302")
    with pytest.raises(InvalidRequestError):
        Identifier.user_id(True)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["mobile", "MOBILE", None, 1])
def test_identifier_type_must_be_the_enum(kind: Any) -> None:
    with pytest.raises(InvalidRequestError, match="IdentifierType"):
        Identifier(kind, "919777785205")


@pytest.mark.parametrize(
    ("kind", "v11", "v2"),
    [
        (IdentifierType.MOBILE, "mobile", "MOBILE"),
        (IdentifierType.EMAIL, "email", "EMAIL"),
        (IdentifierType.EXTERNAL_ID, "external_id", "EXTERNALID"),
        (IdentifierType.CARD_NUMBER, "card_number", "CARDNUMBER"),
        (IdentifierType.CARD_EXTERNAL_ID, "card_external_id", "CARDEXTERNALID"),
        (IdentifierType.USER_ID, "id", "ID"),
    ],
)
def test_identifier_type_spellings(kind: IdentifierType, v11: str, v2: str) -> None:
    assert kind.value == v11
    assert kind.v2_type == v2


def test_identifiers_are_frozen_and_hashable() -> None:
    identifier = Identifier.mobile("919777785205")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        identifier.value = "1"  # type: ignore[misc]
    assert len({identifier, Identifier.mobile("919777785205")}) == 1


@pytest.mark.parametrize(
    "customer", ["9777785206", None, ("mobile", "9777785206"), IdentifierType.MOBILE, {}]
)
def test_customers_must_be_identifiers(customer: Any) -> None:
    with pytest.raises(InvalidRequestError, match="from_customer"):
        transfer(from_customer=customer)
    with pytest.raises(InvalidRequestError, match="to_customer"):
        transfer(to_customer=customer)
    with pytest.raises(InvalidRequestError, match="identifier"):
        ValidationCodeRequest(customer)


def test_same_from_and_to_identifier_is_rejected() -> None:
    with pytest.raises(InvalidRequestError, match="same"):
        transfer(to_customer=Identifier.mobile("9777785206"))


def test_same_value_under_different_types_is_allowed() -> None:
    request = transfer(from_customer=Identifier.external_id("1"), to_customer=Identifier.user_id(1))
    assert request.from_customer != request.to_customer


# --------------------------------------------------------------------------- flags, program


@pytest.mark.parametrize("flag", ["group_program_transfer", "issue_otp"])
@pytest.mark.parametrize("value", ["false", "true", 0, 1, None, "False"])
def test_flags_must_be_booleans(flag: str, value: Any) -> None:
    with pytest.raises(InvalidRequestError, match=flag):
        transfer(**{flag: value})


def test_flag_defaults_and_values() -> None:
    request = transfer()
    assert request.group_program_transfer is False
    assert request.issue_otp is False
    assert request.program_id is None
    request = transfer(group_program_transfer=True, issue_otp=True, program_id=973)
    assert (request.group_program_transfer, request.issue_otp, request.program_id) == (
        True,
        True,
        973,
    )


def test_program_id_may_reach_int32_max() -> None:
    assert transfer(program_id=2**31 - 1).program_id == 2**31 - 1


# isTransferrable's definition types programId as int32: 2**31 was sent before it was refused.
@pytest.mark.parametrize(
    "program_id", [0, -1, -973, True, False, "973", 973.0, math.nan, 2**31, 2**63]
)
def test_bad_program_ids_are_rejected(program_id: Any) -> None:
    with pytest.raises(InvalidRequestError, match="program_id"):
        transfer(program_id=program_id)


def test_requests_are_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        TransferCheckRequest(FROM, TO, 1)  # type: ignore[misc]
    request = transfer()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        request.points = 2  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        ValidationCodeRequest(FROM).points = 2  # type: ignore[misc]


def test_requests_compare_by_value() -> None:
    assert transfer(points=5.0) == transfer(points=5)
    assert ValidationCodeRequest(FROM, 5) == ValidationCodeRequest(Identifier.mobile(FROM.value), 5)


# --------------------------------------------------------------------------- results


@pytest.mark.parametrize("cls", [ItemStatus, ValidationCode, TransferCheck, Customer, Outcome])
def test_result_models_are_frozen_and_slotted(cls: type[Any]) -> None:
    assert attrs.has(cls)
    assert "__slots__" in cls.__dict__
    field = attrs.fields(cls)[0]
    instance = {
        ItemStatus: lambda: ItemStatus(True, 200),
        ValidationCode: lambda: ValidationCode(item_status=ItemStatus(True, 200)),
        TransferCheck: lambda: TransferCheck(
            transferrable=True, points=1.0, transfer_from=Customer(), transfer_to=Customer()
        ),
        Customer: Customer,
        Outcome: lambda: Outcome(request=None),
    }[cls]()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(instance, field.name, None)


def test_outcome_ok_follows_error() -> None:
    assert Outcome(request=1, value="v").ok is True
    failed = Outcome(request=1, error=InvalidRequestError("bad"))
    assert failed.ok is False
    assert failed.value is None
    assert (failed.attempts, failed.elapsed) == (0, 0.0)


# --------------------------------------------------------------------------- one constructor


@attrs.frozen(kw_only=True)
class _AttrsInit(TransferCheckRequest):
    """TransferCheckRequest with the __init__ attrs generates from its fields, which runs each
    converter and validator they declare: the reference its own __init__ must agree with."""


class _Mobile(Identifier):
    pass


CUSTOMERS = [
    FROM,
    TO,
    Identifier.mobile(FROM.value),  # equal to FROM, another object
    Identifier.external_id(FROM.value),  # FROM's value under another type
    _Mobile(IdentifierType.MOBILE, TO.value),  # a subclass, equal to TO
    FROM.value,
    None,
]


ARGUMENTS: dict[str, list[Any]] = {
    "from_customer": CUSTOMERS,
    "to_customer": CUSTOMERS,
    "points": [1, 5, 5.0, INT32_MAX, *BAD_POINTS],
    "program_id": [None, 1, 973, INT32_MAX, 0, -1, True, 973.0, "973", 2**31],
    "group_program_transfer": [False, True, 0, 1, None, "true"],
    "issue_otp": [False, True, 0, None],
}


def test_transfer_check_request_checks_each_argument_as_attrs_init_does() -> None:
    """Each value of each argument, the others good: the same object or the same error."""
    for name, values in ARGUMENTS.items():
        for value in values:
            arguments = {"from_customer": FROM, "to_customer": TO, "points": 1, name: value}
            made = _made(TransferCheckRequest, arguments)
            assert made == _made(_AttrsInit, arguments), (name, value)
            if not isinstance(made, str):
                request = TransferCheckRequest(**arguments)
                assert type(request) is TransferCheckRequest
                assert type(request.points) is int


@given(st.fixed_dictionaries({name: st.sampled_from(v) for name, v in ARGUMENTS.items()}))
def test_transfer_check_request_checks_as_attrs_init_does(arguments: dict[str, Any]) -> None:
    """Any combination, the first error included: the one its fields' checks raise first."""
    assert _made(TransferCheckRequest, arguments) == _made(_AttrsInit, arguments)


def _made(cls: type[Any], arguments: dict[str, Any]) -> dict[str, Any] | str:
    """The fields of ``cls(**arguments)``, or the message it was refused with."""
    try:
        return attrs.asdict(cls(**arguments), recurse=False)
    except InvalidRequestError as exc:
        return str(exc)


def test_a_subclass_of_transfer_check_request_is_built_as_itself() -> None:
    @attrs.frozen(kw_only=True, init=False)
    class Tagged(TransferCheckRequest):
        pass

    request = Tagged(from_customer=FROM, to_customer=TO, points=3.0)
    assert type(request) is Tagged
    assert (request.from_customer, request.to_customer, request.points) == (FROM, TO, 3)
