"""Both endpoints against the sandbox, through the library's own pytest plugin fixtures:
documented answers and error families, and bulk runs that account for every input while the
sandbox resets connections, serves 5xx pages and storms 429s."""

from __future__ import annotations

import pytest

from capillary_points_async import (
    AuthenticationError,
    BasicAuth,
    CapillaryClient,
    CustomerNotFoundError,
    GroupTransferMismatchError,
    Identifier,
    InvalidProgramError,
    RateLimit,
    RateLimitedError,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
    TransferCheckRequest,
    TransportError,
)
from capillary_points_async.testing import FakeCapillary, Faults, max_in_window

FROM, TO = Identifier.mobile("9777785206"), Identifier.mobile("9777785207")


async def test_documented_transfer_is_transferrable(capillary_client: CapillaryClient) -> None:
    check = await capillary_client.points.is_transferrable(
        from_customer=FROM, to_customer=TO, points=1, program_id=973
    )
    assert check.transferrable is True
    assert check.transfer_from.profiles[0].first_name == "testgrp4"
    assert check.transfer_to.id == 564955411
    assert check.request_id


@pytest.mark.fake_capillary(customers=8)
async def test_customer_without_transaction_points_is_not_transferrable(
    capillary_client: CapillaryClient,
) -> None:
    # Generated customer 3 holds only points added at creation, which never transfer.
    check = await capillary_client.points.is_transferrable(
        from_customer=Identifier.mobile("918000000003"),
        to_customer=Identifier.mobile("918000000004"),
        points=1,
    )
    assert check.transferrable is False


async def test_validation_code_is_reissued_unchanged(
    capillary_client: CapillaryClient, fake_capillary: FakeCapillary
) -> None:
    first = await capillary_client.points.issue_validation_code(
        Identifier.mobile("919777785205"), points=100
    )
    code = fake_capillary.state.otp_for("919777785205")
    second = await capillary_client.points.issue_validation_code(
        Identifier.email("testgrp3@gmail.com")
    )
    assert first.item_status.success
    assert second.item_status.success
    assert first.external_id == "434547"
    assert code is not None
    assert fake_capillary.state.otp_for("919777785205") == code


@pytest.mark.parametrize(
    ("kwargs", "error", "code"),
    [
        ({"from_customer": Identifier.mobile("9999999999")}, CustomerNotFoundError, 8015),
        ({"program_id": 12345}, InvalidProgramError, 885),
        ({"group_program_transfer": True}, GroupTransferMismatchError, 3316),
    ],
)
async def test_v2_error_families(
    capillary_client: CapillaryClient, kwargs: dict[str, object], error: type[Exception], code: int
) -> None:
    arguments: dict[str, object] = {
        "from_customer": FROM,
        "to_customer": TO,
        "points": 1,
        "program_id": 973,
    }
    arguments.update(kwargs)
    with pytest.raises(error) as caught:
        await capillary_client.points.is_transferrable(**arguments)  # type: ignore[arg-type]
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert caught.value.request_id  # type: ignore[attr-defined]


async def test_v11_unknown_customer(capillary_client: CapillaryClient) -> None:
    with pytest.raises(CustomerNotFoundError) as caught:
        await capillary_client.points.issue_validation_code(Identifier.mobile("910000000000"))
    assert caught.value.code == 816
    assert caught.value.status == 200  # the v1.1 error arrives inside an HTTP 200


async def test_wrong_password(fake_capillary: FakeCapillary) -> None:
    async with CapillaryClient(
        fake_capillary.url, BasicAuth("sandbox", "wrong"), rate_limit=None
    ) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.points.is_transferrable(from_customer=FROM, to_customer=TO, points=1)
    assert caught.value.status == 401
    assert fake_capillary.stats.by_status()[401] == 1  # never retried


def pairs(count: int) -> list[TransferCheckRequest]:
    return [
        TransferCheckRequest(
            from_customer=Identifier.mobile(f"918{i:09d}"),
            to_customer=Identifier.mobile(f"918{(i + 1) % count:09d}"),
            points=10,
        )
        for i in range(count)
    ]


@pytest.mark.fake_capillary(
    customers=300,
    seed=3,
    faults=Faults(
        reset_rate=0.1, error_rate=0.1, busy_rate=0.05, throttle_rate=0.05, throttle_retry_after=0
    ),
)
async def test_bulk_under_faults_accounts_for_every_input(fake_capillary: FakeCapillary) -> None:
    requests = pairs(300)
    policy = RetryPolicy(max_attempts=6, wait_initial=0.001, wait_max=0.01, budget_ratio=None)
    async with CapillaryClient(
        fake_capillary.url, BasicAuth("sandbox", "sandbox"), rate_limit=None, retry=policy
    ) as client:
        outcomes = [
            o
            async for o in client.points.is_transferrable_many(
                requests, concurrency=32, ordered=True
            )
        ]
    assert [o.request for o in outcomes] == requests
    # A fault on 30% of attempts can still beat six attempts now and then: such an input ends
    # in the fault's typed error after its last attempt, never in silence.
    failed = [o for o in outcomes if not o.ok]
    assert len(failed) <= 5
    assert all(
        isinstance(o.error, (RateLimitedError, ServerError, TransportError)) and o.attempts == 6
        for o in failed
    )
    # Customers with i % 4 == 3 have no transferable points; everybody else has at least 100.
    assert all(o.value.transferrable == (i % 4 != 3) for i, o in enumerate(outcomes) if o.value)
    statuses = fake_capillary.stats.by_status()
    assert statuses[429] > 0
    assert statuses[502] + statuses[503] > 0
    assert statuses[521] > 0
    assert client.stats.retries > 0
    assert client.stats.requests == sum(o.attempts for o in outcomes)


@pytest.mark.fake_capillary(customers=40, faults=Faults(truncate_rate=1.0, for_requests=5))
async def test_truncated_answers_are_retried_and_end_as_decode_errors_past_the_attempts(
    fake_capillary: FakeCapillary,
) -> None:
    retry = RetryPolicy(max_attempts=3, wait_initial=0.001, wait_max=0.001)
    async with CapillaryClient(
        fake_capillary.url, BasicAuth("sandbox", "sandbox"), rate_limit=None, retry=retry
    ) as client:
        outcomes = [
            o
            async for o in client.points.is_transferrable_many(
                pairs(40), concurrency=1, ordered=True
            )
        ]
    assert len(outcomes) == 40
    # Five truncated answers in a row: the first input spends its 3 attempts on them and ends
    # in the typed error; the second meets the last two and succeeds on its third attempt.
    first, second = outcomes[:2]
    assert (type(first.error), first.attempts) == (ResponseDecodeError, 3)
    assert (second.ok, second.attempts) == (True, 3)
    assert all(o.ok and o.attempts == 1 for o in outcomes[2:])
    assert client.stats.retries == 4


@pytest.mark.fake_capillary(customers=60, rate_limits=(20, 1.0))
async def test_client_under_the_gateway_limit_never_meets_a_429(
    fake_capillary: FakeCapillary,
) -> None:
    async with CapillaryClient(
        fake_capillary.url, BasicAuth("sandbox", "sandbox"), rate_limit=RateLimit(20, per=1.0)
    ) as client:
        outcomes = [o async for o in client.points.is_transferrable_many(pairs(45), concurrency=16)]
    assert all(o.ok for o in outcomes)
    assert fake_capillary.stats.by_status()[429] == 0
    assert max_in_window(fake_capillary.arrivals("v2/points/isTransferrable"), 1.0) <= 20
