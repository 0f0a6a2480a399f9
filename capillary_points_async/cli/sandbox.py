"""``sandbox``: a local Capillary on loopback until SIGINT or SIGTERM, which end it with 0."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from .arguments import ENV_BASE_URL, ENV_PASSWORD, ENV_USERNAME, PROG, UsageError, format_rate
from .results import EXIT_OK

if TYPE_CHECKING:
    from ..testing import FakeCapillary

__all__ = ["sandbox"]


def _banner(fake: FakeCapillary, args: argparse.Namespace) -> str:
    """What to connect with, and which customers and programs there are, as the sandbox's
    own state says (the CLI keeps no copy of its numbering)."""
    from ..testing import SEEDED_CUSTOMERS

    generated = fake.state.generated
    ranges = ", ".join(
        f"{kind} {generated[0].identifier(kind)}..{generated[-1].identifier(kind)}"
        for kind in ("mobile", "email", "external_id")
    )
    extra = f" + {len(generated):,} generated ({ranges})" if generated else ""
    docs = ", ".join(str(customer.mobile) for customer in SEEDED_CUSTOMERS)
    programs = ", ".join(
        f"{program.id}{' (group)' if program.group else ''}"
        for program in fake.state.programs.values()
    )
    return "\n".join(
        [
            f"Capillary sandbox listening on {fake.url} (Ctrl-C to stop)",
            f"  username: {args.username}   password: {args.password}",
            f"  customers: {docs} (the docs'){extra}",
            f"  programs: {programs}   rate limit per endpoint: {format_rate(args.rate_limit)}",
            "Try:",
            f"  export {ENV_BASE_URL}={fake.url} {ENV_USERNAME}={args.username} "
            f"{ENV_PASSWORD}={args.password}",
            f"  {PROG} is-transferrable --from mobile:9777785206 --to mobile:9777785207 --points 1",
        ]
    )


async def sandbox(args: argparse.Namespace) -> int:
    """The ``sandbox`` command."""
    from ..testing import FakeCapillary

    try:
        fake = FakeCapillary(
            host=args.host,
            port=args.port,
            username=args.username,
            password=args.password,
            seed=args.seed,
            customers=args.customers,
            rate_limits=args.rate_limit,
        )
    except ValueError as exc:
        raise UsageError(str(exc), args.prog) from None
    async with fake:
        print(_banner(fake, args), flush=True)
        try:
            await asyncio.get_running_loop().create_future()  # serve until cancelled
        except asyncio.CancelledError:
            # SIGINT or SIGTERM (see main): for a server the normal end, so it exits 0. The
            # cancellation is handled: Python 3.11+ counts them, and timeouts read the count.
            task = asyncio.current_task()
            if task is not None and hasattr(task, "uncancel"):
                task.uncancel()
        served = ", ".join(f"{n:,} x HTTP {s}" for s, n in sorted(fake.stats.by_status().items()))
        print(f"sandbox stopped; answered {served or 'nothing'}", flush=True)
    return EXIT_OK
