"""Adaptive limiting: a client configured above the server's real quota.

The sandbox admits 100 requests per second to isTransferrable; the client is told 300 per
second (``RateLimit(300, per=1.0)``) and fans out ``is_transferrable_many`` at concurrency 64
with the default retry policy. A 429 also sets the bucket's rate from what the server accepted
(the rule in ``capillary_points_async/_bucket.py``), the same rule for both backends, whose rows
are printed side by side: the default ``InProcessRateLimiter`` and ``RedisRateLimiter`` (against
a redis-server the script starts; without one on PATH that row is left out, with a MISS). The
baseline, in the same run, is ``InProcessRateLimiter(adaptive=False)`` (the shared cooldown
only).

Reported per run: 429s seen by the sandbox and by the client, when the last 429 came, the
time to converge (from when on the bucket's rate stayed within 10% of 100/s), the
accepted (HTTP 200) rate over the last 5 s of input against the server's 100/s, the bucket's
effective rate (``client.stats.effective_rates``, sampled every 100 ms), and that every input
got exactly one outcome. Picture: ``benchmarks/results/adaptive.png``.

    .venv/bin/python benchmarks/bench_adaptive.py [--quick]
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import uuid
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    IS_TRANSFERRABLE,
    REDIS_MISSING,
    SANDBOX_AUTH,
    Check,
    Feed,
    RedisProcess,
    parse_args,
    report_checks,
    results_dir,
    table,
    transfer_requests,
    write_json,
)

from capillary_points_async import CapillaryClient, InProcessRateLimiter, RateLimit, RateLimiter
from capillary_points_async.redis import RedisRateLimiter
from capillary_points_async.testing import FakeCapillary

CUSTOMERS = 1_000
CONCURRENCY = 64
SERVER_LIMIT = 100  # per second, the sandbox's sliding window
CLIENT_LIMIT = RateLimit(300, per=1.0)
SAMPLE_EVERY = 0.1
TAIL = 5.0  # seconds at the end of the input over which the settled rate is measured
BAND = 0.10  # converged: the bucket's rate stays within this share of the server's limit
CONVERGE_TARGET = 5.0  # seconds
TAIL_TARGET = 0.95  # share of the server's limit accepted over the last TAIL seconds
# 429s in the run with the rule before this one (a probe every 6 windows), issue 13.
BEFORE_429 = 3
IN_PROCESS = "adaptive, InProcessRateLimiter()"
REDIS = "adaptive, RedisRateLimiter"
BASELINE = "InProcessRateLimiter(adaptive=False)"


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the run started
    effective: float  # the bucket's rate now, requests per second
    accepted: int  # the sandbox's 200s so far
    throttled: int  # the sandbox's 429s so far


@dataclass
class Run:
    label: str
    duration: float
    inputs: int = 0
    outcomes: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[Sample] = field(default_factory=list)
    client_429: int = 0
    retries: int = 0
    budget_exhausted: int = 0

    def at_or_before(self, moment: float) -> Sample:
        """The last sample taken at or before ``moment``."""
        index = bisect_right([sample.at for sample in self.samples], moment)
        return self.samples[max(index - 1, 0)]

    @property
    def server_429(self) -> int:
        return self.samples[-1].throttled

    @property
    def last_429(self) -> float | None:
        """When the sandbox's 429 count last rose (to within one sample), None if never."""
        final = self.server_429
        if final == 0:
            return None
        return next(sample.at for sample in self.samples if sample.throttled == final)

    def tail(self) -> tuple[float, int]:
        """Accepted requests per second and 429s over the last ``TAIL`` seconds of input."""
        first, last = self.at_or_before(self.duration - TAIL), self.at_or_before(self.duration)
        span = last.at - first.at
        return (last.accepted - first.accepted) / span, last.throttled - first.throttled

    @property
    def converged(self) -> float | None:
        """From when on the bucket's rate stayed within ``BAND`` of the server's limit, None
        if it never settled there."""
        moment = None
        for sample in self.samples:
            if abs(sample.effective - SERVER_LIMIT) <= BAND * SERVER_LIMIT:
                moment = sample.at if moment is None else moment
            else:
                moment = None
        return moment

    @property
    def effective_at_end(self) -> float:
        return self.at_or_before(self.duration).effective


async def _sample(run: Run, client: CapillaryClient, fake: FakeCapillary, start: float) -> None:
    loop = asyncio.get_running_loop()
    while True:
        statuses = fake.stats.by_status(IS_TRANSFERRABLE)
        rate = client.stats.effective_rates.get(IS_TRANSFERRABLE, CLIENT_LIMIT.rate)
        run.samples.append(Sample(loop.time() - start, rate, statuses[200], statuses[429]))
        await asyncio.sleep(SAMPLE_EVERY)


async def run_one(label: str, make_limiter: Callable[[], RateLimiter], duration: float) -> Run:
    run = Run(label, duration)
    limits = {IS_TRANSFERRABLE: (SERVER_LIMIT, 1.0)}
    async with FakeCapillary(customers=CUSTOMERS, seed=1, rate_limits=limits) as fake:
        limiter = make_limiter()
        await limiter.acquire("warm-up", None)  # a Redis limiter connects before the clock runs
        async with CapillaryClient(
            fake.url, SANDBOX_AUTH, rate_limit=CLIENT_LIMIT, limiter=limiter
        ) as client:
            loop = asyncio.get_running_loop()
            start = loop.time()
            feed = Feed(transfer_requests(CUSTOMERS), loop.time, start + duration)
            sampler = asyncio.create_task(_sample(run, client, fake, start))
            try:
                async for outcome in client.points.is_transferrable_many(
                    feed, concurrency=CONCURRENCY
                ):
                    run.outcomes += 1
                    if outcome.ok:
                        run.ok += 1
                    else:
                        run.errors[type(outcome.error).__name__] += 1
            finally:
                sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
            statuses = fake.stats.by_status(IS_TRANSFERRABLE)
            run.samples.append(
                Sample(loop.time() - start, run.samples[-1].effective, statuses[200], statuses[429])
            )
            run.inputs = feed.given
            run.client_429 = client.stats.rate_limited
            run.retries = client.stats.retries
            run.budget_exhausted = client.stats.budget_exhausted
    return run


def report(runs: Sequence[Run]) -> str:
    baseline = next(run for run in runs if run.label == BASELINE)
    base_rate, _ = baseline.tail()
    rows = []
    for run in runs:
        rate, tail_429 = run.tail()
        last, converged = run.last_429, run.converged
        rows.append(
            (
                run.label,
                f"{run.inputs:,}",
                f"{run.outcomes:,}",
                f"{run.ok:,}",
                ", ".join(f"{name} {count}" for name, count in run.errors.items()) or "0",
                f"{run.server_429} / {run.client_429}",
                "never" if last is None else f"{last:.1f} s",
                "never" if converged is None else f"{converged:.1f} s",
                tail_429,
                f"{rate:.1f}/s",
                f"{rate / SERVER_LIMIT:.1%}",
                f"{rate / base_rate:.2f}",
                f"{run.effective_at_end:.1f}/s",
            )
        )
    headers = (
        "run",
        "inputs",
        "outcomes",
        "ok",
        "failed",
        "429s server/client",
        "last 429",
        f"rate within {BAND:.0%} from",
        f"429s last {TAIL:g} s",
        f"accepted last {TAIL:g} s",
        "of 100/s",
        "vs baseline",
        "bucket rate at end",
    )
    return "\n".join(
        [
            f"== server admits {SERVER_LIMIT}/s, client configured RateLimit(300, per=1) "
            f"(drains at {CLIENT_LIMIT.rate:.1f}/s), concurrency {CONCURRENCY}, "
            f"{runs[0].duration:g} s of input each, default RetryPolicy",
            table(headers, rows),
            *(
                f"{run.label}: 429s at "
                + ", ".join(f"{moment:.1f}" for moment in throttle_times(run))
                + f" s; {run.retries} retries ({run.budget_exhausted} refused by the budget)"
                for run in runs
            ),
        ]
    )


def checks_of(runs: Sequence[Run]) -> list[Check]:
    baseline = next(run for run in runs if run.label == BASELINE)
    checks = [
        Check(
            f"{run.label}: outcomes {run.outcomes:,} == inputs {run.inputs:,}",
            run.outcomes == run.inputs,
            hard=True,
        )
        for run in runs
    ]
    if not any(run.label == REDIS for run in runs):
        checks.append(Check(f"{REDIS}: not run ({REDIS_MISSING})", False))
    for run in runs:
        if run.label == BASELINE:
            continue
        rate, _ = run.tail()
        converged = "never" if run.converged is None else f"{run.converged:.1f} s"
        checks += [
            Check(
                f"{run.label}: fewer 429s than the baseline ({run.server_429} < "
                f"{baseline.server_429}) and than the rule before ({BEFORE_429})",
                run.server_429 < min(baseline.server_429, BEFORE_429),
            ),
            Check(
                f"{run.label}: bucket rate within {BAND:.0%} of {SERVER_LIMIT}/s from "
                f"{converged} on (<= {CONVERGE_TARGET:g} s)",
                run.converged is not None and run.converged <= CONVERGE_TARGET,
            ),
            Check(
                f"{run.label}: accepted rate in the last {TAIL:g} s >= {TAIL_TARGET:.0%} of "
                f"{SERVER_LIMIT}/s ({rate:.1f}/s)",
                rate >= TAIL_TARGET * SERVER_LIMIT,
            ),
        ]
    return checks


def throttle_times(run: Run) -> list[float]:
    """When the sandbox's 429 count rose, to within one sample."""
    times, seen = [], 0
    for sample in run.samples:
        if sample.throttled > seen:
            times.append(sample.at)
            seen = sample.throttled
    return times


def _accepted_per_second(run: Run) -> tuple[list[float], list[float]]:
    """200s in the trailing second, from the cumulative samples."""
    xs, ys = [], []
    for sample in run.samples:
        if sample.at >= 1.0:
            xs.append(sample.at)
            ys.append(float(sample.accepted - run.at_or_before(sample.at - 1.0).accepted))
    return xs, ys


def plot(runs: Sequence[Run], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display needed
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return False
    colors = {IN_PROCESS: "tab:blue", REDIS: "tab:green", BASELINE: "tab:orange"}
    figure, (rates, throttled) = plt.subplots(
        2, 1, figsize=(10, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]}
    )
    for run in runs:
        color = colors[run.label]
        at = [sample.at for sample in run.samples]
        rates.plot(
            at,
            [sample.effective for sample in run.samples],
            color=color,
            linestyle="--",
            linewidth=1.2,
            label=f"{run.label}: bucket rate",
        )
        rates.plot(
            *_accepted_per_second(run), color=color, linewidth=1.8, label="  accepted (200s)"
        )
        throttled.step(at, [sample.throttled for sample in run.samples], where="post", color=color)
    rates.axhline(SERVER_LIMIT, color="tab:red", linestyle=":", linewidth=1.5)
    rates.annotate(
        f"server admits {SERVER_LIMIT}/s",
        # At the left, before the first accepted-rate point, where no curve crosses it.
        xy=(0.005, SERVER_LIMIT),
        xycoords=("axes fraction", "data"),
        ha="left",
        va="bottom",
        color="tab:red",
    )
    rates.axvline(runs[0].duration - TAIL, color="0.6", linewidth=1)
    rates.set_ylim(0, 320)
    rates.set_ylabel("requests per second")
    rates.set_title("Client told 300/s, server admits 100/s: rate and 429s over time")
    rates.grid(alpha=0.3)
    # Below the baseline's flat line at the top, where the adaptive rate has come down.
    rates.legend(loc="center right", bbox_to_anchor=(1.0, 0.62), framealpha=0.95, fontsize=9)
    throttled.set_ylabel("429s so far")
    throttled.yaxis.set_major_locator(MaxNLocator(integer=True))
    throttled.set_xlabel(f"seconds since the run started (grey line: start of the last {TAIL:g} s)")
    throttled.axvline(runs[0].duration - TAIL, color="0.6", linewidth=1)
    throttled.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


async def main(quick: bool) -> int:
    duration = 9.0 if quick else 18.0
    # One after the other: two saturated runs at once would share the CPU and the timing.
    runs = [await run_one(IN_PROCESS, InProcessRateLimiter, duration)]
    if shutil.which("redis-server") is None:
        print(f"{REDIS}: not run, {REDIS_MISSING}")
    else:
        with tempfile.TemporaryDirectory(prefix="bench-adaptive-") as directory:
            redis = RedisProcess(Path(directory))
            redis.start()
            try:
                namespace = f"bench-{uuid.uuid4().hex[:8]}"
                runs.append(
                    await run_one(
                        REDIS,
                        lambda: RedisRateLimiter.from_url(redis.url, namespace=namespace),
                        duration,
                    )
                )
            finally:
                redis.stop()
    runs.append(await run_one(BASELINE, lambda: InProcessRateLimiter(adaptive=False), duration))
    print(report(runs), end="\n\n")
    status = report_checks(checks_of(runs))
    picture = results_dir() / "adaptive.png"
    drawn = plot(runs, picture)
    saved = write_json(
        "adaptive.json",
        [
            {
                "run": run.label,
                "inputs": run.inputs,
                "outcomes": run.outcomes,
                "ok": run.ok,
                "errors": dict(run.errors),
                "server_429": run.server_429,
                "client_429": run.client_429,
                "last_429_s": run.last_429,
                "converged_s": run.converged,
                "tail_accepted_per_s": run.tail()[0],
                "tail_429": run.tail()[1],
                "retries": run.retries,
                "budget_exhausted": run.budget_exhausted,
                "samples": [vars(sample) for sample in run.samples],
            }
            for run in runs
        ],
    )
    print(f"results: {saved}" + (f", {picture}" if drawn else " (no matplotlib: no picture)"))
    return status


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args(__doc__).quick)))
