"""``demo``: an in-process sandbox with generated customers and a rate limit, and the real
client fanning out transfer checks and validation codes against it at once, with progress
and a summary; then one redemption and one transfer, call by call. The customers are the
sandbox's own: the demo asks its state for them."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from .. import (
    BasicAuth,
    CapillaryClient,
    Identifier,
    Outcome,
    TransferCheckRequest,
    ValidationCodeRequest,
)
from .arguments import Rate, UsageError, format_rate, rate_limit
from .display import Batch, Display, client_rows, make_display, status_line, summary, verdict
from .results import EXIT_OK

if TYPE_CHECKING:
    from ..testing import FakeCapillary, SandboxCustomer, SandboxState

__all__ = ["demo", "demo_checks", "demo_codes", "flows", "sandbox_mobiles", "unknown_mobiles"]

#: Points the flows redeem and transfer.
REDEEMED, TRANSFERRED = 100, 50


def sandbox_mobiles(state: SandboxState) -> list[str]:
    """The generated customers' mobile numbers, in the sandbox's order."""
    return [_identifier(customer).value for customer in state.generated]


def unknown_mobiles(state: SandboxState) -> Iterator[str]:
    """Mobile numbers that no customer of ``state`` has, as the state itself answers."""
    for number in itertools.count(910_000_000_000):
        if state.find("mobile", str(number)) is None:
            yield str(number)


def demo_checks(
    count: int, mobiles: Sequence[str], unknown: Iterator[str]
) -> Iterator[TransferCheckRequest]:
    """Checks between the given customers: a mix of transferrable and not (some generated
    customers have no transferable points, see ``generate_customers``; amounts vary), and
    every 40th from an ``unknown`` customer. The receiver is never the sender."""
    for i in range(count):
        source = i % len(mobiles)
        target = (source + 1 + (i % 7) % (len(mobiles) - 1)) % len(mobiles)
        yield TransferCheckRequest(
            from_customer=Identifier.mobile(next(unknown) if i % 40 == 39 else mobiles[source]),
            to_customer=Identifier.mobile(mobiles[target]),
            points=1 + (i * 97) % 800,
        )


def demo_codes(
    count: int, mobiles: Sequence[str], unknown: Iterator[str]
) -> Iterator[ValidationCodeRequest]:
    """Validation codes for the given customers, every 50th for an ``unknown`` one."""
    for i in range(count):
        mobile = next(unknown) if i % 50 == 49 else mobiles[i % len(mobiles)]
        yield ValidationCodeRequest(Identifier.mobile(mobile), points=100)


async def _drain(
    outcomes: AsyncIterator[Outcome[Any, Any]],
    batch: Batch,
    display: Display,
    verdict: Callable[[Any], str] | None = None,
) -> None:
    async for outcome in outcomes:
        value = outcome.value
        batch.record(
            outcome, outcome.error, None if value is None or verdict is None else verdict(value)
        )
        display.update(batch)
    batch.finish()


async def flows(client: CapillaryClient, fake: FakeCapillary, display: Display) -> None:
    """A redemption (issue a code, redeem with it, the balance falls) and a transfer (check,
    then move the points), call by call, on the sandbox healed of its faults: a 5xx page would
    leave a redemption's outcome unknown, which is not what this part shows. Balances are the
    sandbox's books, before and after."""
    fake.set_faults(None)
    generated = fake.state.generated
    lines = ["demo: a redemption and a transfer, call by call"]
    redeemer = next((c for c in generated if c.can_redeem(REDEEMED)), None)
    if redeemer is None:
        lines.append(f"  no customer has {REDEEMED} points to redeem")
    else:
        lines += await _redemption(client, fake.state, redeemer)
    # Someone else, so that the two parts' balances do not mix.
    others = [c for c in generated if redeemer is None or c.user_id != redeemer.user_id]
    sender = next((c for c in others if c.can_transfer(TRANSFERRED)), None)
    if sender is None:
        lines.append(f"  no customer has {TRANSFERRED} points to transfer")
    else:
        receiver = next(
            c
            for c in (*others, *generated)
            if c.user_id != sender.user_id  # 2 at least
        )
        lines += await _transfer(client, sender, receiver)
    display.note("\n".join(lines))


async def _redemption(
    client: CapillaryClient, state: SandboxState, redeemer: SandboxCustomer
) -> list[str]:
    customer, before = _identifier(redeemer), redeemer.redeemable_points
    issued = await client.points.issue_validation_code(customer, points=REDEEMED)
    code = state.otp_for(customer.value)  # what the customer received by SMS
    if code is None:  # pragma: no cover - the call above issued it
        raise AssertionError("the sandbox holds no code for the customer it just sent one")
    redemption = await client.points.redeem(customer, points=REDEEMED, validation_code=code)
    return [
        f"  validation-code {customer.value}: {issued.item_status.message} (code {code})",
        f"  redeem {REDEEMED} with {code}: redemption {redemption.redemption_id}, "
        f"balance {before:,.0f} -> {redeemer.redeemable_points:,.0f}",
    ]


async def _transfer(
    client: CapillaryClient, sender: SandboxCustomer, receiver: SandboxCustomer
) -> list[str]:
    source, target = _identifier(sender), _identifier(receiver)
    before = sender.transaction_points, receiver.transaction_points
    check = await client.points.is_transferrable(
        from_customer=source, to_customer=target, points=TRANSFERRED
    )
    lines = [
        f"  is-transferrable {TRANSFERRED} from {source.value} to {target.value}: {verdict(check)}"
    ]
    if check.transferrable:
        moved = await client.points.transfer(
            from_customer=source, to_customer=target, points=TRANSFERRED
        )
        lines.append(
            f"  transfer {moved.points_transferred:,.0f}: transferable points "
            f"{before[0]:,.0f} -> {sender.transaction_points:,.0f} and "
            f"{before[1]:,.0f} -> {receiver.transaction_points:,.0f}"
        )
    return lines


def _identifier(customer: SandboxCustomer) -> Identifier:
    return Identifier.mobile(str(customer.mobile))


async def demo(args: argparse.Namespace) -> int:
    """The ``demo`` command."""
    from ..testing import IS_TRANSFERRABLE, VALIDATION_CODE, FakeCapillary, Faults, max_in_window

    if args.customers < 2:
        raise UsageError("--customers must be at least 2", args.prog)
    server_rate: Rate = (args.limit, 1.0)
    client_rate: Rate = (max(1, args.limit * 96 // 100), 1.0)
    faults = Faults(latency=(0.002, 0.02), busy_rate=0.01, error_rate=0.005)
    display = make_display(sys.stderr, sys.stdout)
    async with FakeCapillary(
        customers=args.customers, seed=7, rate_limits=server_rate, faults=faults
    ) as fake:
        display.note(
            f"Sandbox: {fake.url}, {args.customers:,} customers, {format_rate(server_rate)} per "
            "endpoint,\n  2-20 ms latency, 1% busy (521) and 0.5% 502/503 pages.\n"
            f"Client: rate limit {format_rate(client_rate)} per endpoint, retries on.\n"
            f"Running {args.checks:,} transfer checks and {args.codes:,} validation codes at once."
        )
        auth = BasicAuth(fake.username, "sandbox")
        async with CapillaryClient(fake.url, auth, rate_limit=rate_limit(client_rate)) as client:
            checks = Batch("transfer checks", args.checks, client_rate)
            codes = Batch("validation codes", args.codes, client_rate)
            batches = [checks, codes]
            mobiles, unknown = sandbox_mobiles(fake.state), unknown_mobiles(fake.state)
            display.start(batches, lambda: status_line(client, batches))
            try:
                await asyncio.gather(
                    _drain(
                        client.points.is_transferrable_many(
                            demo_checks(args.checks, mobiles, unknown), concurrency=32
                        ),
                        checks,
                        display,
                        verdict,
                    ),
                    _drain(
                        client.points.issue_validation_code_many(
                            demo_codes(args.codes, mobiles, unknown), concurrency=32
                        ),
                        codes,
                        display,
                    ),
                )
            finally:
                display.stop()
            summary(display, "demo: results", batches)
            peaks = [
                f"{max_in_window(fake.arrivals(key), server_rate[1]):,}"
                for key in (IS_TRANSFERRABLE, VALIDATION_CODE)
            ]
            display.table(
                "demo: client and sandbox",
                ("", ""),
                [
                    *client_rows(client, batches),
                    (
                        f"sandbox: most arrivals in {server_rate[1]:g} s",
                        f"{' / '.join(peaks)} (limit {server_rate[0]:,})",
                    ),
                ],
            )
            await flows(client, fake, display)
    return EXIT_OK
