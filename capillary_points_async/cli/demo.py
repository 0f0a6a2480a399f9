"""``demo``: an in-process sandbox with generated customers and a rate limit, and the real
client fanning out transfer checks and validation codes against it at once, with progress
and a summary."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

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

__all__ = ["demo", "demo_checks", "demo_codes"]


def demo_checks(count: int, customers: int) -> Iterator[TransferCheckRequest]:
    """Checks between generated customers: a mix of transferrable and not (customers with
    ``i % 4 == 3`` have no transferable points, amounts vary), and every 40th from an
    unknown customer."""
    for i in range(count):
        source, target = i % customers, (i + 1 + i % 7) % customers
        sender = f"917{i:09d}" if i % 40 == 39 else f"918{source:09d}"
        yield TransferCheckRequest(
            from_customer=Identifier.mobile(sender),
            to_customer=Identifier.mobile(f"918{target:09d}"),
            points=1 + (i * 97) % 800,
        )


def demo_codes(count: int, customers: int) -> Iterator[ValidationCodeRequest]:
    """Validation codes for generated customers, every 50th for an unknown one."""
    for i in range(count):
        mobile = f"917{i:09d}" if i % 50 == 49 else f"918{i % customers:09d}"
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
            display.start(batches, lambda: status_line(client, batches))
            try:
                await asyncio.gather(
                    _drain(
                        client.points.is_transferrable_many(
                            demo_checks(args.checks, args.customers), concurrency=32
                        ),
                        checks,
                        display,
                        verdict,
                    ),
                    _drain(
                        client.points.issue_validation_code_many(
                            demo_codes(args.codes, args.customers), concurrency=32
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
    return EXIT_OK
