"""The hot path builds frozen objects without their ``__init__`` (the compiled structure
hooks): what it builds must be the very object the class would."""

from __future__ import annotations

import pickle

import attrs
import pytest

from capillary_points_async._converter import structure
from capillary_points_async.models import Actor, Customer, TransferCheck

from ._samples import sample_json


def test_structured_answers_are_the_models_themselves_and_frozen() -> None:
    payload = sample_json("istransferrable_page_200.json")["data"][0]
    check = structure({**payload, "request_id": "r"}, TransferCheck, "x")
    customer = check.transfer_from
    actor = customer.profiles[0].attribution.created_by  # type: ignore[union-attr]
    assert (type(check), type(customer), type(actor)) == (TransferCheck, Customer, Actor)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        actor.name = "changed"  # type: ignore[misc, union-attr]
    assert pickle.loads(pickle.dumps(check)) == check
