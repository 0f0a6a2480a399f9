"""The library's cattrs converter: Capillary's loose JSON (string booleans, string codes,
numbers where strings belong, naive or offset timestamps) into strict, frozen models, and a
ResponseDecodeError naming the offending path when the shape is wrong."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import attrs
import cattrs
import pytest

from capillary_points_async import (
    Customer,
    ItemStatus,
    ResponseDecodeError,
    TransferCheck,
    ValidationCode,
)
from capillary_points_async._converter import (
    _compile_hook,
    _plain_slots,
    configure_converter,
    structure,
    wire_names,
)
from capillary_points_async._endpoints import (
    IS_REDEEMABLE,
    IS_TRANSFERRABLE,
    REDEEM,
    TRANSFER,
    VALIDATION_CODE,
    Endpoint,
)

from ._samples import (
    REDEEMABILITY_SAMPLES,
    REDEMPTION_SAMPLES,
    TRANSFER_CHECK_SAMPLES,
    TRANSFER_SAMPLES,
    VALIDATION_CODE_SAMPLES,
    raw_response,
    sample_bytes,
    sample_json,
)

UTC = timezone.utc
IST = timezone(timedelta(hours=5, minutes=30))


def vc_item(**changes: Any) -> dict[str, Any]:
    """The page sample's ``validation_code.code`` object, with ``changes`` applied."""
    item = sample_json("validationcode_page_200.json")["response"]["validation_code"]["code"]
    item.update(changes)
    return {key: value for key, value in item.items() if value is not ...}


def tc_item() -> dict[str, Any]:
    """The page sample's ``data[0]`` object, as the decoder hands it over."""
    item = sample_json("istransferrable_page_200.json")["data"][0]
    item["warnings"] = []
    item["request_id"] = "rid-c"
    return item


def structure_vc(payload: dict[str, Any]) -> ValidationCode:
    return structure(payload, ValidationCode, "v1.1/points/validationcode")


def structure_tc(payload: dict[str, Any]) -> TransferCheck:
    return structure(payload, TransferCheck, "v2/points/isTransferrable")


# --------------------------------------------------------------------------- scalars


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("true", True),
        ("false", False),
        ("TRUE", True),
        ("False", False),
        (" true ", True),
        (True, True),
        (False, False),
    ],
)
def test_booleans_from_strings_and_json_booleans(wire: Any, expected: bool) -> None:
    status = structure({"success": wire, "code": 200, "message": "ok"}, ItemStatus, "item")
    assert status.success is expected


@pytest.mark.parametrize("wire", ["maybe", "yes", "", "1", 1, 0, None, [], {}])
def test_non_booleans_are_rejected_naming_the_field(wire: Any) -> None:
    with pytest.raises(ResponseDecodeError, match=r"ItemStatus\.success"):
        structure({"success": wire, "code": 200}, ItemStatus, "item")


@pytest.mark.parametrize(
    ("wire", "expected"),
    [(200, 200), ("200", 200), ("816", 816), (" 816 ", 816), (816.0, 816), ("-1", -1)],
)
def test_codes_as_ints_strings_and_integral_floats(wire: Any, expected: int) -> None:
    status = structure({"success": "false", "code": wire}, ItemStatus, "item")
    assert status.code == expected
    assert type(status.code) is int


@pytest.mark.parametrize("wire", [816.5, "8x16", "", True, None, float("nan"), float("inf")])
def test_bad_codes_are_rejected_naming_the_field(wire: Any) -> None:
    with pytest.raises(ResponseDecodeError, match=r"ItemStatus\.code"):
        structure({"success": "false", "code": wire}, ItemStatus, "item")


def test_item_status_message_defaults_to_empty() -> None:
    assert structure({"success": "true", "code": "200"}, ItemStatus, "item") == ItemStatus(
        success=True, code=200, message=""
    )


def test_points_and_identifiers_in_their_other_documented_types() -> None:
    # The OpenAPI schema gives code.points as "50" and adds user_id "55456"; ids may come as
    # JSON numbers.
    decoded = structure_vc(vc_item(points="50", user_id="55456", mobile=919777785205))
    assert decoded.points == 50
    assert decoded.user_id == "55456"
    assert decoded.mobile == "919777785205"


def test_v11_item_status_codes_as_strings() -> None:
    decoded = structure_vc(
        vc_item(item_status={"success": "true", "code": "200", "message": "Issued"})
    )
    assert decoded.item_status == ItemStatus(success=True, code=200, message="Issued")


def test_floats_accept_ints_and_reject_booleans_and_text() -> None:
    item = tc_item()
    item["pointsTobeTransferred"] = 7
    decoded = structure_tc(item)
    assert decoded.points == 7.0
    assert type(decoded.points) is float
    for bad in (True, "lots", None):
        item["pointsTobeTransferred"] = bad
        with pytest.raises(ResponseDecodeError, match=r"TransferCheck\.points"):
            structure_tc(item)


@pytest.mark.parametrize("wire", [[], {}, True])
def test_strings_reject_non_scalars(wire: Any) -> None:
    with pytest.raises(ResponseDecodeError, match=r"ValidationCode\.mobile"):
        structure_vc(vc_item(mobile=wire))


def test_null_optional_field_is_none() -> None:
    assert structure_vc(vc_item(mobile=None)).mobile is None


# --------------------------------------------------------------------------- timestamps


def with_time(value: Any) -> TransferCheck:
    item = tc_item()
    item["transferFrom"]["profiles"][0]["autoUpdateTime"] = value
    return structure_tc(item)


@pytest.mark.parametrize(
    ("wire", "expected", "offset"),
    [
        ("2025-10-07T10:15:10Z", datetime(2025, 10, 7, 10, 15, 10, tzinfo=UTC), timedelta(0)),
        ("2025-10-07T10:15:10z", datetime(2025, 10, 7, 10, 15, 10, tzinfo=UTC), timedelta(0)),
        ("2025-10-07T10:15:10", datetime(2025, 10, 7, 10, 15, 10, tzinfo=UTC), timedelta(0)),
        (
            "2025-02-18T05:14:32+05:30",
            datetime(2025, 2, 18, 5, 14, 32, tzinfo=IST),
            timedelta(hours=5, minutes=30),
        ),
        (
            "2025-02-18T05:14:32.123Z",
            datetime(2025, 2, 18, 5, 14, 32, 123000, tzinfo=UTC),
            timedelta(0),
        ),
    ],
    ids=["Z", "lower-z", "naive-is-utc", "ist-offset-kept", "fraction"],
)
def test_timestamps_are_timezone_aware(wire: str, expected: datetime, offset: timedelta) -> None:
    profile = with_time(wire).transfer_from.profiles[0]
    assert profile.auto_update_time == expected
    assert profile.auto_update_time is not None
    assert profile.auto_update_time.utcoffset() == offset


def test_offset_timestamp_compares_with_utc_ones() -> None:
    profile = with_time("2025-02-18T10:44:32+05:30").transfer_from.profiles[0]
    assert profile.auto_update_time == datetime(2025, 2, 18, 5, 14, 32, tzinfo=UTC)


@pytest.mark.parametrize("wire", ["yesterday", "", 1_700_000_000, "2025-13-01T00:00:00Z"])
def test_bad_timestamps_name_their_path(wire: Any) -> None:
    with pytest.raises(
        ResponseDecodeError, match=r"TransferCheck\.transfer_from\.profiles\[0\]\.auto_update_time"
    ):
        with_time(wire)


# --------------------------------------------------------------------------- shape


def test_unknown_fields_are_ignored_at_every_level() -> None:
    item = tc_item()
    expected = structure_tc(copy.deepcopy(item))
    item["brandNewField"] = {"x": 1}
    item["transferFrom"]["mood"] = "happy"
    item["transferFrom"]["profiles"][0]["nickname"] = "grp4"
    item["transferFrom"]["profiles"][0]["identifiers"][0]["verifiedAt"] = "never"
    item["transferFrom"]["loyaltyInfo"]["tier"] = "gold"
    assert structure_tc(item) == expected

    status = structure(
        {"success": "true", "code": 200, "message": "m", "extra": 1}, ItemStatus, "item"
    )
    assert status == ItemStatus(True, 200, "m")


def test_missing_optional_fields_are_none_or_empty() -> None:
    decoded = structure_tc(
        {"transferrable": "true", "pointsTobeTransferred": 1, "transferFrom": {}, "transferTo": {}}
    )
    assert decoded.transferrable is True
    assert decoded.warnings == ()
    assert decoded.request_id is None
    empty = Customer()
    assert decoded.transfer_from == decoded.transfer_to == empty
    assert (empty.id, empty.profiles, empty.loyalty_info) == (None, (), None)
    assert (empty.segments, empty.extended_fields) == ({}, {})


def test_missing_optional_profile_fields() -> None:
    item = tc_item()
    item["transferFrom"]["profiles"] = [{"identifiers": [{"type": "mobile", "value": "91"}]}]
    item["transferFrom"]["loyaltyInfo"] = {}
    decoded = structure_tc(item).transfer_from
    (profile,) = decoded.profiles
    assert (profile.first_name, profile.attribution, profile.auto_update_time) == (None,) * 3
    assert profile.comm_channels == ()
    assert profile.fields == {}
    assert decoded.loyalty_info is not None
    assert decoded.loyalty_info.lifetime_purchases is None


def test_validation_code_with_only_item_status() -> None:
    decoded = structure_vc({"item_status": {"success": "true", "code": 200}})
    assert (decoded.mobile, decoded.email, decoded.external_id, decoded.points) == (None,) * 4
    assert decoded.user_id is None
    assert decoded.request_id is None


@pytest.mark.parametrize(
    ("mutate", "path", "reason"),
    [
        (lambda i: i.update(transferrable="maybe"), "TransferCheck.transferrable", "bool"),
        (lambda i: i.pop("transferrable"), "TransferCheck.transferrable", "missing"),
        (lambda i: i.pop("transferFrom"), "TransferCheck.transfer_from", "missing"),
        (lambda i: i.pop("pointsTobeTransferred"), "TransferCheck.points", "missing"),
        (
            lambda i: i["transferTo"].update(id="five"),
            "TransferCheck.transfer_to.id",
            "int",
        ),
        (
            lambda i: i["transferFrom"]["profiles"][0]["identifiers"][1].update(value=None),
            "TransferCheck.transfer_from.profiles[0].identifiers[1].value",
            "str",
        ),
        (
            lambda i: i["transferFrom"]["profiles"][0]["identifiers"][2].pop("type"),
            "TransferCheck.transfer_from.profiles[0].identifiers[2].type",
            "missing",
        ),
        (
            lambda i: i["transferFrom"]["loyaltyInfo"].update(lifetimePurchases="lots"),
            "TransferCheck.transfer_from.loyalty_info.lifetime_purchases",
            "float",
        ),
        (
            lambda i: i["transferTo"]["profiles"][0]["commChannels"][1].update(primary="maybe"),
            "TransferCheck.transfer_to.profiles[0].comm_channels[1].primary",
            "bool",
        ),
        (
            lambda i: i["transferFrom"]["profiles"][0]["attribution"]["createdBy"].update(
                referenceId="x"
            ),
            "TransferCheck.transfer_from.profiles[0].attribution.created_by.reference_id",
            "int",
        ),
    ],
    ids=[
        "transferrable-maybe",
        "transferrable-missing",
        "transferFrom-missing",
        "points-missing",
        "id-text",
        "identifier-value-null",
        "identifier-type-missing",
        "lifetime-text",
        "primary-maybe",
        "reference-id-text",
    ],
)
def test_wrong_transfer_check_shapes_name_the_path(mutate: Any, path: str, reason: str) -> None:
    item = tc_item()
    mutate(item)
    with pytest.raises(ResponseDecodeError) as info:
        structure_tc(item)
    message = str(info.value)
    assert path in message
    assert "v2/points/isTransferrable" in message
    if reason == "missing":
        assert "required field missing" in message
    assert info.value.request_id == "rid-c"
    assert "rid-c" in message


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        (vc_item(item_status=...), "ValidationCode.item_status"),
        (vc_item(item_status="ok"), "ValidationCode.item_status"),
        (vc_item(item_status={"success": "true"}), "ValidationCode.item_status.code"),
        (vc_item(points="many"), "ValidationCode.points"),
    ],
    ids=["item-status-missing", "item-status-text", "item-code-missing", "points-text"],
)
def test_wrong_validation_code_shapes_name_the_path(payload: dict[str, Any], path: str) -> None:
    payload["request_id"] = "rid-v"
    with pytest.raises(ResponseDecodeError) as info:
        structure_vc(payload)
    assert path in str(info.value)
    assert info.value.request_id == "rid-v"


def test_every_bad_field_is_named() -> None:
    item = tc_item()
    item["transferrable"] = "maybe"
    item["transferTo"]["id"] = "five"
    with pytest.raises(ResponseDecodeError) as info:
        structure_tc(item)
    assert "TransferCheck.transferrable" in str(info.value)
    assert "TransferCheck.transfer_to.id" in str(info.value)


def test_request_id_is_read_under_its_own_name() -> None:
    item = tc_item()
    del item["request_id"]
    item["requestId"] = "camel"
    assert structure_tc(item).request_id is None
    item["request_id"] = "snake"
    assert structure_tc(item).request_id == "snake"


def test_the_global_converter_is_left_alone() -> None:
    # The library registers its strict hooks on its own converters only: the global one still
    # has cattrs' default behaviour (bool("false") is True).
    assert cattrs.structure("false", bool) is True
    assert structure({"success": "false", "code": 1}, ItemStatus, "x").success is False


# --------------------------------------------------------------------------- compiled hooks


@pytest.mark.parametrize(
    "name", ["istransferrable_page_200.json", "istransferrable_openapi_200.json"]
)
def test_compiled_hooks_agree_with_cattrs_generated_ones(name: str) -> None:
    """The client's specialised structure functions are an optimisation of cattrs' generated
    ones: on every recorded answer both must build the same objects."""
    generated = cattrs.Converter(detailed_validation=False, forbid_extra_keys=False)
    configure_converter(generated, fast=False)
    payload = sample_json(name)["data"][0]
    payload.update(warnings=[], request_id="r")
    fast = structure(copy.deepcopy(payload), TransferCheck, "x")
    assert fast == generated.structure(payload, TransferCheck)
    # Built around __init__, so check that nothing __init__ would set is missing.
    assert attrs.asdict(fast) == attrs.asdict(generated.structure(payload, TransferCheck))


def test_null_lists_and_objects_read_as_empty() -> None:
    customer = structure(
        {"id": 1, "profiles": None, "segments": None, "loyaltyInfo": None}, Customer, "x"
    )
    assert (customer.profiles, dict(customer.segments), customer.loyalty_info) == ((), {}, None)


@attrs.frozen(kw_only=True)
class _Converted:
    amount: int = attrs.field(converter=abs)


@attrs.frozen(kw_only=True)
class _Checked:
    name: str
    seen: list[str] = attrs.field(factory=list, eq=False)

    def __attrs_post_init__(self) -> None:
        self.seen.append(self.name)


@attrs.define(kw_only=True, slots=False)
class _WithDict:
    name: str


def test_classes_whose_init_does_more_than_store_are_built_through_it() -> None:
    """The compiled hooks fill slots directly only where __init__ would do nothing else."""
    converter = cattrs.Converter()
    configure_converter(converter)
    assert _compile_hook(converter, _Converted)({"amount": -3}, None).amount == 3
    assert _compile_hook(converter, _Checked)({"name": "n"}, None).seen == ["n"]
    assert _compile_hook(converter, _WithDict)({"name": "n"}, None) == _WithDict(name="n")
    assert not any(map(_plain_slots, (_Converted, _Checked, _WithDict)))
    assert all(map(_plain_slots, (TransferCheck, Customer, ItemStatus, ValidationCode)))


# --------------------------------------------------------------------------- nothing dropped

# JSON keys a model deliberately does not keep, per model; every other non-null key on the
# wire must land in a field. Empty today: every documented key has a field.
NOT_MODELLED: dict[type, set[str]] = {}


def dropped(obj: Any, wire: dict[str, Any], path: str) -> list[str]:
    """Where a non-null value on the wire did not reach ``obj``: a key no field reads (a
    missing wire name) or a field that came out None, searched through nested models."""
    names = wire_names(type(obj))
    field_of = {key: name for name, key in names.items()}
    problems = []
    for key, value in wire.items():
        if value is None or key in NOT_MODELLED.get(type(obj), set()):
            continue
        name = field_of.get(key)
        if name is None:
            problems.append(f"{path}.{key}: no field of {type(obj).__name__} reads this key")
            continue
        got = getattr(obj, name)
        if got is None:
            problems.append(f"{path}.{key}: {type(obj).__name__}.{name} came out None")
        elif attrs.has(type(got)) and isinstance(value, dict):
            problems += dropped(got, value, f"{path}.{key}")
        elif isinstance(got, tuple) and isinstance(value, list):
            for index, (item, raw) in enumerate(zip(got, value, strict=True)):
                if attrs.has(type(item)) and isinstance(raw, dict):
                    problems += dropped(item, raw, f"{path}.{key}[{index}]")
    return problems


@pytest.mark.parametrize(
    ("endpoint", "name"),
    [(VALIDATION_CODE, name) for name in VALIDATION_CODE_SAMPLES]
    + [(IS_TRANSFERRABLE, name) for name in TRANSFER_CHECK_SAMPLES]
    + [(IS_REDEEMABLE, name) for name in REDEEMABILITY_SAMPLES]
    + [(REDEEM, name) for name in REDEMPTION_SAMPLES]
    + [(TRANSFER, name) for name in TRANSFER_SAMPLES],
)
def test_every_model_keeps_every_value_of_its_doc_sample(
    endpoint: Endpoint[Any, Any], name: str
) -> None:
    decoded = endpoint.decode(raw_response(sample_bytes(name), 200), 0.0)
    result = structure(decoded.fields(), endpoint.model, endpoint.key)
    assert dropped(result, decoded.item, endpoint.model.__name__) == []


@attrs.frozen(kw_only=True)
class SnakeDeclaredForCamelWire:
    _wire_case: ClassVar[str] = "snake"
    is_redeemable: bool | None = None
    points_redeemable: int | None = None


@attrs.frozen(kw_only=True)
class MissingRename:
    points: float | None = None  # the wire says pointsTobeTransferred


@pytest.mark.parametrize(
    ("cls", "wire", "expected"),
    [
        (
            SnakeDeclaredForCamelWire,
            {"isRedeemable": True, "pointsRedeemable": 5},
            ["isRedeemable", "pointsRedeemable"],
        ),
        (MissingRename, {"pointsTobeTransferred": 1.0}, ["pointsTobeTransferred"]),
    ],
)
def test_the_check_catches_a_model_with_a_missing_wire_name(
    cls: type, wire: dict[str, Any], expected: list[str]
) -> None:
    # Structuring itself does not complain: unknown keys are ignored, fields default to None.
    result = structure(wire, cls, "test")
    assert all(getattr(result, f.name) is None for f in attrs.fields(cls))
    problems = dropped(result, wire, cls.__name__)
    assert [problem.split(":")[0].split(".")[-1] for problem in problems] == expected


def test_a_model_needs_no_registration() -> None:
    # The trap: a model no list named lost its camelCase fields silently.
    @attrs.frozen(kw_only=True)
    class Redeemability:
        is_redeemable: bool | None = None
        points_redeemable: int | None = None

    wire = {"isRedeemable": True, "pointsRedeemable": 5}
    assert structure(wire, Redeemability, "test") == Redeemability(
        is_redeemable=True, points_redeemable=5
    )
