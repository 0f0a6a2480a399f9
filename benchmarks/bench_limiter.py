"""Limiter accuracy: does the client stay within RateLimit(L, per=P) and still use the quota?

The sandbox runs without a server-side limit, so it only records when each request arrived.
The client fans out ``is_transferrable_many`` at concurrency 64 under ``RateLimit(L, per=P)``:
the package's default, then ``safety_margin=0``, ``burst=1`` and ``burst=2`` where they differ
from it. The baseline, in the same run, is a plain ``aiolimiter.AsyncLimiter(L, P)`` in front
of raw aiohttp posts to the same sandbox (aiolimiter comes with the ``bench`` extra; the
package itself no longer uses it).

Reported per run: the most arrivals in any window of P seconds (must be <= L), the first
window's count (aiolimiter lets 2L through there), the steady rate after the first window as a
share of L/P (target >= 97%) and of the bucket's own drain rate (``RateLimit.rate``).
Picture: ``benchmarks/results/limiter.png``.

    .venv/bin/python benchmarks/bench_limiter.py [--quick]
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from _common import (
    IS_TRANSFERRABLE,
    SANDBOX_AUTH,
    Check,
    Feed,
    parse_args,
    report_checks,
    results_dir,
    sliding_counts,
    steady_rate,
    table,
    transfer_requests,
    write_json,
)
from aiolimiter import AsyncLimiter

from capillary_points_async import CapillaryClient, RateLimit, TransferCheckRequest
from capillary_points_async.testing import FakeCapillary, max_in_window

CUSTOMERS = 1_000
CONCURRENCY = 64
RATE_TARGET = 0.97  # share of L the default configuration must reach
BASELINE = "aiolimiter.AsyncLimiter"


@dataclass(frozen=True)
class Scenario:
    limit: int
    per: float
    duration: float  # seconds of input; the requests in flight then drain at the same rate

    @property
    def name(self) -> str:
        return f"RateLimit({self.limit}, per={self.per:g})"


@dataclass(frozen=True)
class Run:
    label: str
    scenario: Scenario
    arrivals: list[float]  # the sandbox's clock, sorted
    failures: int
    drain: float  # the rate the limiter is built to let through, requests per second
    limit: RateLimit | None = None  # the client's configuration; None for the baseline

    @property
    def first_window(self) -> int:
        start = self.arrivals[0]
        return sum(1 for moment in self.arrivals if moment < start + self.scenario.per)

    @property
    def max_window(self) -> int:
        return max_in_window(self.arrivals, self.scenario.per)

    @property
    def steady(self) -> float:
        return steady_rate(self.arrivals, skip=self.scenario.per)

    @property
    def steady_share(self) -> float:
        return self.steady / (self.scenario.limit / self.scenario.per)


# Client configurations of the same RateLimit(L, per=P), as overrides of the package's
# defaults (read from RateLimit itself, so the rows stay right when a default changes):
#  - safety_margin=0: the margin costs ~2% of the rate; without it, arrivals bunched on the way
#    (a handshake, a slow hop) can put more than L in the server's window;
#  - burst 1 and 2: a bucket of one token drops whatever lateness each timer wake-up has; a
#    second token lets the next request catch up, at a cost of one request per window.
OVERRIDES: tuple[dict[str, Any], ...] = ({}, {"safety_margin": 0.0}, {"burst": 1}, {"burst": 2})


def client_limits(scenario: Scenario) -> list[tuple[str, RateLimit]]:
    """The default first, then each override that differs from every configuration before it."""
    chosen: list[tuple[str, RateLimit]] = []
    for override in OVERRIDES:
        limit = RateLimit(scenario.limit, per=scenario.per, **override)
        if any(limit == seen for _, seen in chosen):
            continue
        if override:
            label = "client " + ", ".join(f"{key}={value:g}" for key, value in override.items())
        else:
            label = f"client default (safety_margin={limit.safety_margin:g}, burst={limit.burst})"
        chosen.append((label, limit))
    return chosen


async def run_client(scenario: Scenario, label: str, limit: RateLimit) -> Run:
    async with FakeCapillary(customers=CUSTOMERS, seed=1) as fake:
        loop = asyncio.get_running_loop()
        feed = Feed(transfer_requests(CUSTOMERS), loop.time, loop.time() + scenario.duration)
        failures = 0
        async with CapillaryClient(fake.url, SANDBOX_AUTH, rate_limit=limit) as client:
            async for outcome in client.points.is_transferrable_many(feed, concurrency=CONCURRENCY):
                failures += not outcome.ok
        arrivals = sorted(fake.arrivals(IS_TRANSFERRABLE))
        return Run(label, scenario, arrivals, failures, limit.rate, limit)


def _wire_body(request: TransferCheckRequest) -> bytes:
    # The body Capillary's isTransferrable page shows, as the client would send it.
    return orjson.dumps(
        {
            "pointsTobeTransferred": request.points,
            "fromCustomerIdentifier": {"type": "MOBILE", "value": request.from_customer.value},
            "toCustomerIdentifier": {"type": "MOBILE", "value": request.to_customer.value},
        }
    )


async def run_aiolimiter(scenario: Scenario) -> Run:
    """The baseline: what most code does, one AsyncLimiter(L, P) around raw aiohttp posts."""
    limiter = AsyncLimiter(scenario.limit, scenario.per)
    headers = {"Authorization": SANDBOX_AUTH.header, "Content-Type": "application/json"}
    async with (
        FakeCapillary(customers=CUSTOMERS, seed=1) as fake,
        aiohttp.ClientSession(
            headers=headers, connector=aiohttp.TCPConnector(limit=100)
        ) as session,
    ):
        loop = asyncio.get_running_loop()
        feed = iter(Feed(transfer_requests(CUSTOMERS), loop.time, loop.time() + scenario.duration))
        url = f"{fake.url}/{IS_TRANSFERRABLE}"
        failures = 0

        async def worker() -> None:
            nonlocal failures
            # Workers share one iterator: next() is synchronous, so each input goes to one.
            for request in feed:
                async with limiter, session.post(url, data=_wire_body(request)) as response:
                    await response.read()
                    failures += response.status != 200

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        arrivals = sorted(fake.arrivals(IS_TRANSFERRABLE))
        return Run(BASELINE, scenario, arrivals, failures, scenario.limit / scenario.per)


async def run_scenario(scenario: Scenario, *, side_by_side: bool) -> list[Run]:
    """The baseline and every client variant. Side by side (each with its own sandbox) only
    for slow scenarios, where the runs together are a light load; otherwise one after another
    so that they do not disturb each other's timing."""
    clients = client_limits(scenario)
    jobs = [run_aiolimiter(scenario), *(run_client(scenario, *client) for client in clients)]
    if side_by_side:
        return list(await asyncio.gather(*jobs))
    return [await job for job in jobs]


def report(scenario: Scenario, runs: Sequence[Run]) -> str:
    baseline = next(run for run in runs if run.label == BASELINE)
    rows = [
        (
            run.label,
            len(run.arrivals),
            run.failures,
            run.first_window,
            run.max_window,
            f"{run.steady:.2f}/s",
            f"{run.steady_share:.2%}",
            f"{run.drain:.2f}/s",
            f"{run.steady / run.drain:.2%}",
            f"{run.steady / baseline.steady:.3f}",
        )
        for run in runs
    ]
    headers = (
        "run",
        "requests",
        "non-200",
        "first window",
        "max in any window",
        "steady rate",
        "of L/P",
        "drain rate",
        "of drain",
        "vs baseline",
    )
    return "\n".join(
        [
            f"== {scenario.name}: L={scenario.limit} per {scenario.per:g} s, "
            f"{scenario.duration:g} s of input, concurrency {CONCURRENCY}",
            table(headers, rows),
        ]
    )


def checks_of(scenario: Scenario, runs: Sequence[Run]) -> list[Check]:
    clients = [run for run in runs if run.limit is not None]
    checks = [
        # Without the margin, arrivals bunched on the way may exceed L: that is the trade-off
        # shown, not a bug, so only configurations that keep a margin are held to the limit.
        Check(
            f"{scenario.name} {run.label}: max in any {scenario.per:g}-s window "
            f"{run.max_window} <= {scenario.limit}",
            run.max_window <= scenario.limit,
            hard=True,
        )
        for run in clients
        if run.limit is not None and run.limit.safety_margin > 0
    ]
    default = clients[0]
    return [
        *checks,
        Check(
            f"{scenario.name} default: every request answered 200 ({default.failures} not)",
            default.failures == 0,
            hard=True,
        ),
        Check(
            f"{scenario.name} default: steady rate {default.steady_share:.2%} >= "
            f"{RATE_TARGET:.0%} of L/P",
            default.steady_share >= RATE_TARGET,
        ),
    ]


def plot(results: Sequence[tuple[Scenario, Sequence[Run]]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    # In run order: the baseline, the client's default, then the overrides.
    styles: list[dict[str, Any]] = [
        {"color": "0.45", "linewidth": 1.6},
        {"color": "tab:blue", "linewidth": 1.8},
        {"color": "tab:orange", "linewidth": 1.2, "linestyle": "--"},
        {"color": "tab:green", "linewidth": 1.2},
        {"color": "tab:purple", "linewidth": 1.2, "linestyle": "-."},
    ]
    figure, axes = plt.subplots(len(results), 1, figsize=(10, 4.2 * len(results)), squeeze=False)
    for axis, (scenario, runs) in zip(axes[:, 0], results, strict=True):
        # The count in the trailing window is exactly what a server's sliding window limits.
        for run, style in zip(runs, styles, strict=False):
            xs, counts = sliding_counts(run.arrivals, scenario.per, scenario.per / 100)
            axis.plot(xs, counts, label=run.label, **style)
        axis.axhline(scenario.limit, color="tab:red", linestyle=":", linewidth=1.5)
        axis.annotate(
            f"limit L = {scenario.limit}",
            xy=(0.995, scenario.limit),
            xycoords=("axes fraction", "data"),
            ha="right",
            va="bottom",
            color="tab:red",
        )
        axis.set_ylim(0, 2.25 * scenario.limit)
        axis.set_xlim(left=0)
        axis.set_title(f"{scenario.name}, concurrency {CONCURRENCY}: arrivals at the sandbox")
        axis.set_xlabel("seconds since the run's first request")
        axis.set_ylabel(f"requests in the trailing {scenario.per:g} s")
        axis.grid(alpha=0.3)
        axis.legend(loc="upper right", bbox_to_anchor=(1.0, 0.93), framealpha=0.95)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


async def main(quick: bool) -> int:
    fast = Scenario(200, 1.0, 4.0 if quick else 7.0)
    slow = Scenario(100, 5.0, 10.0 if quick else 15.0)
    results = [
        (fast, await run_scenario(fast, side_by_side=False)),
        (slow, await run_scenario(slow, side_by_side=True)),
    ]
    checks = []
    for scenario, runs in results:
        print(report(scenario, runs), end="\n\n")
        checks += checks_of(scenario, runs)
    status = report_checks(checks)
    picture = results_dir() / "limiter.png"
    drawn = plot(results, picture)
    saved = write_json(
        "limiter.json",
        [
            {
                "scenario": scenario.name,
                "run": run.label,
                "requests": len(run.arrivals),
                "non_200": run.failures,
                "first_window": run.first_window,
                "max_in_window": run.max_window,
                "steady_rate": run.steady,
                "steady_share_of_limit": run.steady_share,
                "drain_rate": run.drain,
            }
            for scenario, runs in results
            for run in runs
        ],
    )
    print(f"results: {saved}" + (f", {picture}" if drawn else " (no matplotlib: no picture)"))
    return status


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args(__doc__).quick)))
