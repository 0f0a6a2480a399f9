"""What the sandbox knows: customers and their points, programs, the validation codes it has
issued, and the redemptions and transfers it has carried out.

Generated customers follow a fixed scheme (see :func:`generate_customers`) so that a CLI run or
a benchmark can build requests for them without asking the server.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterable
from typing import Literal, get_args

import attrs

__all__ = [
    "DEFAULT_COUNTRY_CODE",
    "DEFAULT_PROGRAMS",
    "IDENTIFIER_KINDS",
    "SEEDED_CUSTOMERS",
    "OtpScope",
    "Program",
    "Redeemed",
    "SandboxCustomer",
    "SandboxState",
    "Transferred",
    "generate_customers",
    "identifier_kind_of_v2_type",
    "normalize_mobile",
]

OtpScope = Literal["redeem", "transfer"]
"""What a code is for: a redemption's validation code (issued by ``validationcode`` and by
``isredeemable`` with ``issue_otp``) or a transfer's OTP (``isTransferrable`` with
``issueOtp``). The docs issue them through different calls (the transfer page names
isTransferrable and issuePointsTransferOtp), so the sandbox keeps them apart: one is no
good for the other."""

DEFAULT_COUNTRY_CODE = "91"

#: Identifier kinds, named as v1.1's query parameters are. ``id`` is the user id.
IDENTIFIER_KINDS = ("mobile", "email", "external_id", "card_number", "card_external_id", "id")

# v2 identifier ``type`` spellings from both generations of the docs (API-NOTES.md, "v2
# envelope"), upper-cased; the transfer page also writes them in camel case.
_V2_TYPES = {
    "MOBILE": "mobile",
    "EMAIL": "email",
    "EXTERNALID": "external_id",
    "EXTERNAL_ID": "external_id",
    "CARDNUMBER": "card_number",
    "CARDEXTERNALID": "card_external_id",
    "ID": "id",
}

_OTP_ALPHABET = string.ascii_uppercase + string.digits
# Redemption ids look like the docs' "7t4y2a"; effect and transfer ids like theirs too.
_REDEMPTION_ID_ALPHABET = string.ascii_lowercase + string.digits
_FIRST_EFFECT_ID = 27_141_811
_FIRST_TRANSFER_ID = 1_043_035


def identifier_kind_of_v2_type(type_: str) -> str | None:
    """The identifier kind a v2 ``type`` names (case-insensitive), or None if unknown."""
    return _V2_TYPES.get(type_.upper())


def normalize_mobile(value: str, country_code: str = DEFAULT_COUNTRY_CODE) -> str:
    """Digits only, with the country code: Capillary stores ``919777785206`` and accepts
    ``9777785206`` for it (the isTransferrable sample sends the short form)."""
    digits = value.strip().lstrip("+").replace(" ", "").replace("-", "")
    if len(digits) == 10 and digits.isdigit():
        return country_code + digits
    return digits


def _optional_mobile(value: str | None) -> str | None:
    return None if value is None else normalize_mobile(value)


# Identifiers are fixed (the state indexes customers by them); balances move.
_MOVES = attrs.setters.NO_OP


@attrs.define(kw_only=True, on_setattr=attrs.setters.frozen)
class SandboxCustomer:
    """A loyalty customer of the sandbox.

    Only ``transaction_points`` can be transferred: Capillary does not transfer points that
    were added when the customer was created (``creation_points``). Both can be redeemed.
    The two balances change as the sandbox carries out redemptions and transfers; every
    other field is read-only (assigning one raises ``attrs.exceptions.FrozenAttributeError``).
    """

    user_id: int
    mobile: str | None = attrs.field(default=None, converter=_optional_mobile)
    email: str | None = None
    external_id: str | None = None
    card_number: str | None = None
    card_external_id: str | None = None
    first_name: str = ""
    last_name: str = ""
    transaction_points: float = attrs.field(default=0.0, on_setattr=_MOVES)
    creation_points: float = attrs.field(default=0.0, on_setattr=_MOVES)
    lifetime_purchases: float = 0.0
    created: str = "2025-01-01T00:00:00Z"
    modified: str = "2025-01-01T00:00:00Z"
    auto_updated: str = "2025-01-01T00:00:00Z"

    def identifier(self, kind: str) -> str | None:
        """This customer's identifier of ``kind`` (one of :data:`IDENTIFIER_KINDS`)."""
        if kind == "id":
            return str(self.user_id)
        value: str | None = getattr(self, kind)
        return value

    @property
    def redeemable_points(self) -> float:
        """What a redemption can take: every point, those of the creation included."""
        return self.transaction_points + self.creation_points

    def can_transfer(self, points: float) -> bool:
        """Whether ``points`` can move to another customer: only ``transaction_points`` can."""
        return self.transaction_points >= points

    def can_redeem(self, points: float) -> bool:
        """Whether ``points`` can be redeemed (see :attr:`redeemable_points`)."""
        return self.redeemable_points >= points


@attrs.frozen
class Redeemed:
    """A redemption the sandbox carried out (``at``: the sandbox's clock)."""

    redemption_id: str
    effect_id: int  # ``side_effects.effect[0].id`` of the answer
    user_id: int
    points: int
    validation_code: str
    transaction_number: str | None
    at: float


@attrs.frozen
class Transferred:
    """A transfer the sandbox carried out (``at``: the sandbox's clock)."""

    transfer_id: int
    from_user_id: int
    to_user_id: int
    points: int
    program_id: int
    at: float


@attrs.frozen
class Program:
    """A loyalty program. A group program accepts ``groupProgramTransfer: true``."""

    id: int
    name: str
    group: bool = False


DEFAULT_PROGRAMS = (Program(973, "Default program"), Program(974, "Group program", group=True))
"""The sandbox's programs: 973, the org's default, and 974, a group program."""

SEEDED_CUSTOMERS = (
    SandboxCustomer(
        user_id=564955205,
        mobile="919777785205",
        email="testgrp3@gmail.com",
        external_id="434547",
        first_name="testgrp3",
        last_name="testgrpv2",
        transaction_points=5000.0,
        lifetime_purchases=50000.0,
        created="2025-02-18T05:10:21Z",
        modified="2025-06-02T11:26:40Z",
        auto_updated="2025-10-07T10:15:10Z",
    ),
    SandboxCustomer(
        user_id=564955302,
        mobile="919777785206",
        email="testgrp4@gmail.com",
        external_id="434548",
        first_name="testgrp4",
        last_name="testgrpv2",
        transaction_points=500.0,
        creation_points=100.0,
        lifetime_purchases=50000.0,
        created="2025-02-18T05:14:32Z",
        modified="2025-06-02T11:26:52Z",
        auto_updated="2025-10-07T10:15:10Z",
    ),
    SandboxCustomer(
        user_id=564955411,
        mobile="919777785207",
        email="testgrp5@gmail.com",
        external_id="434549",
        first_name="testgrp5",
        last_name="testgrpv2",
        creation_points=100.0,
        lifetime_purchases=50000.0,
        created="2025-02-18T05:53:34Z",
        modified="2025-06-02T11:27:06Z",
        auto_updated="2025-10-07T10:15:10Z",
    ),
)
"""The documentation samples' customers, all in program 973. 9777785206 -> 9777785207 with one
point is transferable (the isTransferrable sample); 9777785207 -> 9777785206 is not, since
9777785207 only has points from its creation."""


def generate_customers(count: int, seed: int = 0) -> list[SandboxCustomer]:
    """``count`` customers numbered ``i = 0 .. count-1``, the same for the same ``seed``.

    Identifiers depend on ``i`` only:

    | kind             | value                          | i = 7                    |
    |------------------|--------------------------------|--------------------------|
    | mobile           | ``"918" + f"{i:09d}"``         | ``918000000007``         |
    | email            | ``f"customer{i}@example.com"`` | ``customer7@example.com`` |
    | external_id      | ``f"ext-{i}"``                 | ``ext-7``                |
    | card_number      | ``f"CARD{i:010d}"``            | ``CARD0000000007``       |
    | card_external_id | ``f"card-ext-{i}"``            | ``card-ext-7``           |
    | id (user id)     | ``800_000_000 + i``            | ``800000007``            |

    Balances depend on the seed, except that a customer with ``i % 4 == 3`` has no
    transaction points (so no transfer from it is ever transferrable) while every other one
    has between 100 and 10,000. Customer ``i`` is the same whatever ``count`` is.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    rng = random.Random(f"{seed}/customers")
    customers = []
    for i in range(count):
        # Both numbers are drawn for every customer, so that customer i's balance depends on
        # i alone. random() rather than randint(): it is 3x faster, for 100,000s of customers.
        earned = 100 + int(rng.random() * 9_901)
        at_creation = int(rng.random() * 501)
        customers.append(
            SandboxCustomer(
                user_id=800_000_000 + i,
                mobile=f"918{i:09d}",
                email=f"customer{i}@example.com",
                external_id=f"ext-{i}",
                card_number=f"CARD{i:010d}",
                card_external_id=f"card-ext-{i}",
                first_name=f"customer{i}",
                last_name="sandbox",
                transaction_points=0.0 if i % 4 == 3 else float(earned),
                creation_points=float(at_creation),
                lifetime_purchases=float(earned * 10),
            )
        )
    return customers


def _index_key(kind: str, value: str) -> str:
    if kind == "mobile":
        return normalize_mobile(value)
    if kind == "email":
        return value.strip().lower()
    return value.strip()


class SandboxState:
    """Customers and their points, programs, issued codes, and what was redeemed and
    transferred; shared by every request.

    Args:
        clock: the time source of OTP validity (the server passes its own clock).
        seed: makes generated customers, codes and redemption ids reproducible.
        customers: how many customers to generate (see :func:`generate_customers`), on top
            of :data:`SEEDED_CUSTOMERS`.
        otp_validity: seconds a validation code stays valid; issuing again within it sends
            the same code (Capillary's "OTP code validity period", 15 minutes here).
        programs: the known loyalty programs.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        seed: int = 0,
        customers: int = 0,
        otp_validity: float = 900.0,
        programs: Iterable[Program] = DEFAULT_PROGRAMS,
    ) -> None:
        self._clock = clock
        self.otp_validity = otp_validity
        self.programs: dict[int, Program] = {program.id: program for program in programs}
        #: Every customer, the seeded ones first, then the generated ones, then added ones.
        self.customers: list[SandboxCustomer] = []
        #: The generated customers only; ``generated[i]`` is customer ``i`` of the scheme.
        self.generated: list[SandboxCustomer] = generate_customers(customers, seed)
        #: Redemptions carried out, in order.
        self.redemptions: list[Redeemed] = []
        #: Transfers carried out, in order.
        self.transfers: list[Transferred] = []
        self._index: dict[tuple[str, str], SandboxCustomer] = {}
        self._otps: dict[str, dict[int, tuple[str, float]]] = {s: {} for s in get_args(OtpScope)}
        self._otp_rng = random.Random(f"{seed}/otp")
        self._id_rng = random.Random(f"{seed}/redemption-ids")
        # Copies: the seeded customers' balances move, and SEEDED_CUSTOMERS is shared.
        for customer in (*map(attrs.evolve, SEEDED_CUSTOMERS), *self.generated):
            self.add_customer(customer)

    def add_customer(self, customer: SandboxCustomer) -> SandboxCustomer:
        """Make ``customer`` known; its identifiers must not belong to anyone else yet. The
        state changes its balances from now on."""
        keys = [
            (kind, _index_key(kind, value))
            for kind in IDENTIFIER_KINDS
            if (value := customer.identifier(kind)) is not None
        ]
        taken = [key for key in keys if key in self._index]
        if taken:
            raise ValueError(f"identifiers already in use: {taken}")
        for key in keys:
            self._index[key] = customer
        self.customers.append(customer)
        return customer

    def default_program(self) -> Program | None:
        """The program of a request without ``programId``: the first one known."""
        return next(iter(self.programs.values()), None)

    def find(self, kind: str, value: str) -> SandboxCustomer | None:
        """The customer whose identifier of ``kind`` is ``value``; mobiles match with and
        without the default country code, e-mails in any case."""
        if kind not in IDENTIFIER_KINDS:
            raise ValueError(
                f"unknown identifier kind {kind!r}; expected one of {IDENTIFIER_KINDS}"
            )
        return self._index.get((kind, _index_key(kind, value)))

    # -- codes --------------------------------------------------------------------------------

    def issue_otp(self, customer: SandboxCustomer, scope: OtpScope = "redeem") -> str:
        """Issue a code, or the same one again while it is still valid."""
        current = self.current_otp(customer, scope)
        if current is not None:
            return current
        code = "".join(self._otp_rng.choices(_OTP_ALPHABET, k=6))
        self._otps[scope][customer.user_id] = (code, self._clock() + self.otp_validity)
        return code

    def current_otp(self, customer: SandboxCustomer, scope: OtpScope = "redeem") -> str | None:
        """The code of ``scope`` that is valid for ``customer`` now, or None."""
        current = self._otps[scope].get(customer.user_id)
        return current[0] if current is not None and self._clock() < current[1] else None

    def otp_for(
        self, value: str, *, kind: str = "mobile", scope: OtpScope = "redeem"
    ) -> str | None:
        """The code currently valid for a customer, or None: by default the validation code
        a redemption must quote; ``scope="transfer"`` the OTP a transfer must quote.

        Responses never carry a code (it goes out by SMS or e-mail); tests read it here.
        A code stops being valid when it expires or when the call that quotes it succeeds.
        """
        if scope not in self._otps:
            raise ValueError(f"unknown scope {scope!r}; expected one of {tuple(self._otps)}")
        customer = self.find(kind, value)
        return None if customer is None else self.current_otp(customer, scope)

    # -- points -------------------------------------------------------------------------------

    def redeem(
        self,
        customer: SandboxCustomer,
        points: int,
        validation_code: str,
        transaction_number: str | None = None,
    ) -> Redeemed:
        """Take ``points`` (transaction points first, then those of the creation) and use up
        the validation code. The caller has checked the code and the balance."""
        self._otps["redeem"].pop(customer.user_id, None)
        from_transactions = min(float(points), customer.transaction_points)
        customer.transaction_points -= from_transactions
        customer.creation_points -= points - from_transactions
        record = Redeemed(
            redemption_id="".join(self._id_rng.choices(_REDEMPTION_ID_ALPHABET, k=6)),
            effect_id=_FIRST_EFFECT_ID + len(self.redemptions),
            user_id=customer.user_id,
            points=points,
            validation_code=validation_code,
            transaction_number=transaction_number,
            at=self._clock(),
        )
        self.redemptions.append(record)
        return record

    def transfer(
        self, source: SandboxCustomer, target: SandboxCustomer, points: int, program: Program
    ) -> Transferred:
        """Move ``points`` of ``source``'s transaction points to ``target`` and use up
        ``source``'s transfer OTP, if one was issued. The caller has checked the OTP and the
        balance."""
        self._otps["transfer"].pop(source.user_id, None)
        source.transaction_points -= points
        target.transaction_points += points
        record = Transferred(
            transfer_id=_FIRST_TRANSFER_ID + len(self.transfers),
            from_user_id=source.user_id,
            to_user_id=target.user_id,
            points=points,
            program_id=program.id,
            at=self._clock(),
        )
        self.transfers.append(record)
        return record
