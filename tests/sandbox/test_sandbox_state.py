"""Customers and programs: the seeded ones, the generated scheme, lookups."""

from __future__ import annotations

import attrs
import pytest

from capillary_points_async.testing import (
    DEFAULT_PROGRAMS,
    SEEDED_CUSTOMERS,
    FakeCapillary,
    SandboxCustomer,
    SandboxState,
    generate_customers,
    normalize_mobile,
)


def test_generated_identifiers_follow_the_documented_scheme() -> None:
    customer = generate_customers(8, seed=3)[7]
    assert (
        customer.mobile,
        customer.email,
        customer.external_id,
        customer.card_number,
        customer.card_external_id,
        customer.user_id,
    ) == (
        "918000000007",
        "customer7@example.com",
        "ext-7",
        "CARD0000000007",
        "card-ext-7",
        800_000_007,
    )


def test_generated_customers_depend_on_seed_and_index_only() -> None:
    assert generate_customers(50, seed=1)[:20] == generate_customers(20, seed=1)
    assert generate_customers(20, seed=1) != generate_customers(20, seed=2)
    assert generate_customers(0) == []
    with pytest.raises(ValueError, match="count"):
        generate_customers(-1)


def test_every_fourth_generated_customer_has_nothing_to_transfer() -> None:
    customers = generate_customers(400, seed=5)
    for i, customer in enumerate(customers):
        if i % 4 == 3:
            assert not customer.can_transfer(1)
        else:
            assert customer.can_transfer(100)
    assert len({c.transaction_points for c in customers}) > 100


def test_the_sandbox_knows_the_documentation_customers_and_programs() -> None:
    fake = FakeCapillary(customers=5, seed=9)
    assert fake.state.customers[:3] == list(SEEDED_CUSTOMERS)
    assert fake.state.generated == generate_customers(5, seed=9)
    assert fake.state.customers[3:] == fake.state.generated
    assert {p.id: p.group for p in fake.state.programs.values()} == {973: False, 974: True}
    assert fake.state.default_program() == DEFAULT_PROGRAMS[0]


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("9777785206", "919777785206"),
        ("919777785206", "919777785206"),
        ("+91 97777-85206", "919777785206"),
        ("44700900999", "44700900999"),
    ],
)
def test_mobiles_are_stored_with_the_country_code(raw: str, stored: str) -> None:
    assert normalize_mobile(raw) == stored


def test_customers_can_be_added_but_identifiers_stay_unique() -> None:
    state = SandboxState(clock=lambda: 0.0)
    added = state.add_customer(SandboxCustomer(user_id=1, mobile="9000000001", email="A@b.c"))
    assert added.mobile == "919000000001"
    assert state.find("email", "a@B.C") is added
    assert state.find("id", "1") is added
    assert state.find("card_number", "none") is None
    with pytest.raises(ValueError, match="already in use"):
        state.add_customer(SandboxCustomer(user_id=2, mobile="919000000001"))
    with pytest.raises(ValueError, match="unknown identifier kind"):
        state.find("passport", "X")


def test_balances_move_but_identifiers_stay_put() -> None:
    state = SandboxState(clock=lambda: 0.0)
    customer = state.find("mobile", "919777785206")
    assert customer is not None
    customer.transaction_points -= 1
    assert state.find("id", "564955302") is customer
    assert customer.transaction_points == 499.0
    with pytest.raises(attrs.exceptions.FrozenAttributeError):
        customer.mobile = "919000000000"  # type: ignore[misc]


def test_each_sandbox_has_its_own_copy_of_the_seeded_customers() -> None:
    first, second = SandboxState(clock=lambda: 0.0), SandboxState(clock=lambda: 0.0)
    customer = first.find("mobile", "919777785205")
    assert customer is not None
    code = first.issue_otp(customer)
    first.redeem(customer, 4000, code)
    assert first.customers[0].transaction_points == 1000.0
    assert second.customers[0].transaction_points == 5000.0
    assert SEEDED_CUSTOMERS[0].transaction_points == 5000.0


def test_a_redemption_takes_transaction_points_first_and_uses_up_the_code() -> None:
    state = SandboxState(clock=lambda: 0.0, seed=3)
    customer = state.find("mobile", "919777785206")  # 500 + 100 of its creation
    assert customer is not None
    assert customer.redeemable_points == 600.0
    code = state.issue_otp(customer)
    done = state.redeem(customer, 550, code, "bill-7")
    assert (customer.transaction_points, customer.creation_points) == (0.0, 50.0)
    assert state.otp_for("919777785206") is None
    assert state.redemptions == [done]
    assert (done.points, done.validation_code, done.transaction_number) == (550, code, "bill-7")
    assert len(done.redemption_id) == 6
    assert done.redemption_id != state.redeem(customer, 1, "X").redemption_id


def test_codes_of_each_scope_are_issued_and_read_apart() -> None:
    now = [0.0]
    state = SandboxState(clock=lambda: now[0], otp_validity=60.0)
    customer = state.find("mobile", "919777785206")
    assert customer is not None
    redeem_code = state.issue_otp(customer)
    transfer_code = state.issue_otp(customer, "transfer")
    assert redeem_code != transfer_code
    assert state.otp_for("9777785206") == redeem_code
    assert state.otp_for("9777785206", scope="transfer") == transfer_code
    target = state.find("mobile", "919777785207")
    assert target is not None
    state.transfer(customer, target, 10, DEFAULT_PROGRAMS[0])
    assert state.otp_for("9777785206", scope="transfer") is None
    assert state.otp_for("9777785206") == redeem_code
    now[0] = 60.0
    assert state.otp_for("9777785206") is None
    with pytest.raises(ValueError, match="unknown scope"):
        state.otp_for("9777785206", scope="login")  # type: ignore[arg-type]
