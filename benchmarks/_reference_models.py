# ruff: noqa: RUF012 - pydantic and msgspec copy mutable defaults per instance
"""The isTransferrable models written for pydantic v2 and msgspec, as reference points for
the structuring benchmark (benchmark-only dependencies; None when not installed).

No ``from __future__ import annotations`` here: msgspec resolves the annotations of these
classes at decoder build time and needs them evaluated.
"""

from datetime import datetime
from typing import Any


def pydantic_envelope() -> Any:
    try:
        from pydantic import BaseModel, ConfigDict, Field
    except ImportError:
        return None

    class Model(BaseModel):
        model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    class Actor(Model):
        id: int | None = None
        code: str | None = None
        name: str | None = None
        type: str | None = None
        reference_id: int | None = Field(None, alias="referenceId")
        default: bool | None = None

    class Attribution(Model):
        create_date: datetime | None = Field(None, alias="createDate")
        created_by: Actor | None = Field(None, alias="createdBy")
        modified_by: Actor | None = Field(None, alias="modifiedBy")
        modified_date: datetime | None = Field(None, alias="modifiedDate")

    class Ident(Model):
        type: str
        value: str

    class Channel(Model):
        type: str | None = None
        value: str | None = None
        primary: bool | None = None
        verified: bool | None = None
        meta: dict[str, Any] = {}
        attributes: dict[str, Any] = {}

    class Profile(Model):
        first_name: str | None = Field(None, alias="firstName")
        last_name: str | None = Field(None, alias="lastName")
        identifiers: tuple[Ident, ...] = ()
        identifiers_all: tuple[Ident, ...] = Field((), alias="identifiersAll")
        comm_channels: tuple[Channel, ...] = Field((), alias="commChannels")
        source: str | None = None
        user_id: int | None = Field(None, alias="userId")
        account_id: str | None = Field(None, alias="accountId")
        attribution: Attribution | None = None
        auto_update_time: datetime | None = Field(None, alias="autoUpdateTime")
        fields: dict[str, Any] = {}
        all_fields: dict[str, Any] = Field({}, alias="allFields")
        conflicting_profile_list: tuple[Any, ...] = Field((), alias="conflictingProfileList")

    class Loyalty(Model):
        loyalty_type: str | None = Field(None, alias="loyaltyType")
        lifetime_purchases: float | None = Field(None, alias="lifetimePurchases")
        attribution_v2: Attribution | None = Field(None, alias="attributionV2")

    class Customer(Model):
        id: int | None = None
        profiles: tuple[Profile, ...] = ()
        loyalty_info: Loyalty | None = Field(None, alias="loyaltyInfo")
        segments: dict[str, Any] = {}
        extended_fields: dict[str, Any] = Field({}, alias="extendedFields")

    class Check(Model):
        transferrable: bool
        points: float = Field(alias="pointsTobeTransferred")
        transfer_from: Customer = Field(alias="transferFrom")
        transfer_to: Customer = Field(alias="transferTo")

    class Envelope(Model):
        data: tuple[Check, ...]
        warnings: tuple[Any, ...] = ()

    return Envelope


try:
    import msgspec
except ImportError:
    msgspec = None  # type: ignore[assignment]

if msgspec is not None:

    class MActor(msgspec.Struct, frozen=True, rename="camel"):
        id: int | None = None
        code: str | None = None
        name: str | None = None
        type: str | None = None
        reference_id: int | None = None
        default: bool | None = None

    class MAttribution(msgspec.Struct, frozen=True, rename="camel"):
        create_date: datetime | None = None
        created_by: MActor | None = None
        modified_by: MActor | None = None
        modified_date: datetime | None = None

    class MIdent(msgspec.Struct, frozen=True):
        type: str
        value: str

    class MChannel(msgspec.Struct, frozen=True):
        type: str | None = None
        value: str | None = None
        primary: bool | None = None
        verified: bool | None = None
        meta: dict[str, Any] = {}
        attributes: dict[str, Any] = {}

    class MProfile(msgspec.Struct, frozen=True, rename="camel"):
        first_name: str | None = None
        last_name: str | None = None
        identifiers: tuple[MIdent, ...] = ()
        identifiers_all: tuple[MIdent, ...] = ()
        comm_channels: tuple[MChannel, ...] = ()
        source: str | None = None
        user_id: int | None = None
        account_id: str | None = None
        attribution: MAttribution | None = None
        auto_update_time: datetime | None = None
        fields: dict[str, Any] = {}
        all_fields: dict[str, Any] = {}
        conflicting_profile_list: tuple[Any, ...] = ()

    class MLoyalty(msgspec.Struct, frozen=True, rename="camel"):
        loyalty_type: str | None = None
        lifetime_purchases: float | None = None
        attribution_v2: MAttribution | None = None

    class MCustomer(msgspec.Struct, frozen=True, rename="camel"):
        id: int | None = None
        profiles: tuple[MProfile, ...] = ()
        loyalty_info: MLoyalty | None = None
        segments: dict[str, Any] = {}
        extended_fields: dict[str, Any] = {}

    class MCheck(
        msgspec.Struct,
        frozen=True,
        rename={
            "points": "pointsTobeTransferred",
            "transfer_from": "transferFrom",
            "transfer_to": "transferTo",
        },
    ):
        transferrable: bool
        points: float
        transfer_from: MCustomer
        transfer_to: MCustomer

    class MEnvelope(msgspec.Struct, frozen=True):
        data: tuple[MCheck, ...]
        warnings: tuple[Any, ...] = ()


def msgspec_decoder() -> Any:
    return None if msgspec is None else msgspec.json.Decoder(MEnvelope)
