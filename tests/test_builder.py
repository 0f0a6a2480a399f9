"""The hot path builds frozen objects without their ``__init__`` (``_converter.builder`` and
the compiled structure hooks): what it builds must be the very object the class would."""

from __future__ import annotations

import copy
import pickle
import weakref
from typing import Any

import attrs
import pytest
from multidict import CIMultiDict

from capillary_points_async import ApiRequest, InvalidRequestError, Outcome, RawResponse
from capillary_points_async._converter import builder, structure
from capillary_points_async.models import Actor, Customer, TransferCheck

from ._samples import sample_json

CASES: list[tuple[type[Any], tuple[Any, ...], dict[str, Any]]] = [
    (ApiRequest, ("POST", "v2/points/isTransferrable", "v2/points/isTransferrable"), {}),
    (ApiRequest, ("GET", "k", "p", (("a", "1"),), b"{}", (("Authorization", "Bearer t"),)), {}),
    (RawResponse, (200, CIMultiDict({"X-Cap-Requestid": "r"}), b"{}"), {}),
    (Outcome, (), {"request": "input"}),
    (Outcome, (), {"request": 1, "error": InvalidRequestError("bad"), "attempts": 2}),
]


@pytest.mark.parametrize(("cls", "args", "kwargs"), CASES)
def test_builder_makes_what_the_class_makes(
    cls: type[Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    built, made = builder(cls)(*args, **kwargs), cls(*args, **kwargs)
    assert type(built) is cls
    # Every field, defaults included, so that a field added to the class and not to what the
    # builder fills would show here as a missing slot.
    assert attrs.asdict(built, recurse=False) == attrs.asdict(made, recurse=False)
    assert repr(built) == repr(made)
    assert built == made
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.__setattr__(attrs.fields(cls)[0].name, None)
    assert weakref.ref(built)() is built
    assert copy.copy(built) == built


def test_builder_takes_the_arguments_the_class_takes() -> None:
    with pytest.raises(TypeError):
        builder(Outcome)("input")  # keyword-only, as Outcome(...) is
    with pytest.raises(TypeError):
        builder(ApiRequest)("GET", "k")  # path is required


@attrs.frozen
class _Validated:
    name: str = attrs.field(validator=attrs.validators.instance_of(str))


@attrs.frozen
class _Factory:
    items: list[int] = attrs.field(factory=list)


@attrs.frozen
class _PostInit:
    name: str

    def __attrs_post_init__(self) -> None:
        pass


@pytest.mark.parametrize("cls", [_Validated, _Factory, _PostInit])
def test_builder_refuses_a_class_whose_init_does_more_than_store(cls: type[Any]) -> None:
    with pytest.raises(TypeError):
        builder(cls)


def test_structured_answers_are_the_models_themselves_and_frozen() -> None:
    payload = sample_json("istransferrable_page_200.json")["data"][0]
    check = structure({**payload, "request_id": "r"}, TransferCheck, "x")
    customer = check.transfer_from
    actor = customer.profiles[0].attribution.created_by  # type: ignore[union-attr]
    assert (type(check), type(customer), type(actor)) == (TransferCheck, Customer, Actor)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        actor.name = "changed"  # type: ignore[misc, union-attr]
    assert pickle.loads(pickle.dumps(check)) == check
