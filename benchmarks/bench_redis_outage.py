"""A Redis outage under bulk load: what becomes of the input while the shared limiter's Redis is
away, and of the quota when it returns.

Three worker processes run ``is_transferrable_many`` against one sandbox that admits 30
requests per second, sharing ``RateLimit(30, per=1.0)`` through :class:`RedisRateLimiter`.
After 7 s the redis-server is stopped; 6 s later it is started again on the same port (empty:
a restart without persistence); the run goes on for 7 s more. Three limiter settings, each a
separate run:

* **default** (``fallback=False``, ``acquire_timeout=300``, bulk concurrency 64): inputs
  failed (target 0: an outage shorter than ``acquire_timeout`` delays calls, it does not fail
  them), oks before the outage, the longest successful call.
* **acquire_timeout=3** (shorter than the outage; concurrency 8, so that the queue alone
  stays well under 3 s): the failures that remain, and the shortest call that failed with
  ``RateLimiterUnavailableError`` (at least 3 s: not at once).
* **fallback=True** (concurrency 64): failures (target 0); per worker, the turns its
  in-process fallback granted after the worker logged Redis "reachable again" (target 0: they
  would come on top of the shared bucket); from the last worker's switch-back on, the most
  arrivals in any 1 s window against the limit of 30, and the sandbox's 429s.

There is no in-run baseline: the figure to compare with is the previous version of
``redis.py`` run by the same script (``PYTHONPATH`` pointing at an export of it).

    .venv/bin/python benchmarks/bench_redis_outage.py [--quick]

Needs ``redis-server`` on PATH (``apt-get install redis-server``) and redis-py.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import sys
import tempfile
import time
import uuid
from bisect import bisect_left
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    IS_TRANSFERRABLE,
    SANDBOX_AUTH,
    Check,
    Feed,
    RedisProcess,
    parse_args,
    report_checks,
    table,
    transfer_requests,
)

from capillary_points_async import CapillaryClient, InProcessRateLimiter, RateLimit
from capillary_points_async.redis import RedisRateLimiter
from capillary_points_async.testing import FakeCapillary

WORKERS = 3
LIMIT = 30  # per second: the sandbox's sliding window and the client's RateLimit
CUSTOMERS = 1_000
SAMPLE_EVERY = 0.05


@dataclass(frozen=True)
class Timeline:
    before: float  # seconds of normal running before Redis stops
    outage: float
    after: float

    @property
    def duration(self) -> float:
        return self.before + self.outage + self.after


@dataclass
class WorkerResult:
    outcomes: list[tuple[float, float, str]] = field(default_factory=list)  # end, elapsed, kind
    back: list[float] = field(default_factory=list)  # when "reachable again" was logged
    local_turns: list[float] = field(default_factory=list)  # grants of the fallback limiter

    def local_turns_after_back(self, since: float) -> int | None:
        """Turns the fallback granted after the first switch-back later than ``since``."""
        back = [moment for moment in self.back if moment > since]
        if not back:
            return None
        return sum(1 for moment in self.local_turns if moment > back[0])


# -- one worker process -------------------------------------------------------------------------


class _SwitchBacks(logging.Handler):
    def __init__(self, result: WorkerResult) -> None:
        super().__init__(logging.INFO)
        self._result = result

    def emit(self, record: logging.LogRecord) -> None:
        if "reachable again" in record.getMessage():
            self._result.back.append(time.monotonic())


class _CountingLocal(InProcessRateLimiter):
    """The fallback limiter, noting when it grants a turn. No public API says which backend
    granted a turn, so the benchmark swaps the limiter's private fallback for this one."""

    __slots__ = ("_turns",)

    def __init__(self, turns: list[float]) -> None:
        super().__init__()
        self._turns = turns

    async def acquire(self, key: str, limit: RateLimit | None) -> None:
        await super().acquire(key, limit)
        self._turns.append(time.monotonic())


def worker(
    settings: dict[str, Any],
    concurrency: int,
    redis_url: str,
    sandbox_url: str,
    namespace: str,
    start_at: float,
    duration: float,
) -> WorkerResult:
    """Runs the bulk call from ``start_at`` (wall clock) for ``duration`` seconds; outcome
    times are ``time.monotonic()``, which is system-wide on Linux."""
    result = WorkerResult()
    logger = logging.getLogger("capillary_points_async")
    logger.setLevel(logging.INFO)
    logger.addHandler(_SwitchBacks(result))

    async def run() -> None:
        limiter = RedisRateLimiter.from_url(redis_url, namespace=namespace, **settings)
        if limiter._local is not None:
            limiter._local = _CountingLocal(result.local_turns)
        async with CapillaryClient(
            sandbox_url, SANDBOX_AUTH, rate_limit=RateLimit(LIMIT, per=1.0), limiter=limiter
        ) as client:
            await limiter.acquire("warm-up", None)  # connected before the clock starts
            await asyncio.sleep(max(0.0, start_at - time.time()))
            feed = Feed(transfer_requests(CUSTOMERS), time.monotonic, time.monotonic() + duration)
            async for outcome in client.points.is_transferrable_many(feed, concurrency=concurrency):
                kind = "ok" if outcome.error is None else type(outcome.error).__name__
                result.outcomes.append((time.monotonic(), outcome.elapsed, kind))

    asyncio.run(run())
    return result


# -- one run ------------------------------------------------------------------------------------


@dataclass
class Run:
    label: str
    outage_start: float
    outage_end: float
    workers: list[WorkerResult]
    arrivals: list[float]
    throttled: list[tuple[float, int]]  # (when, the sandbox's 429s so far)

    def failures(self, worker: WorkerResult) -> list[tuple[float, float, str]]:
        return [outcome for outcome in worker.outcomes if outcome[2] != "ok"]

    def oks_before(self, worker: WorkerResult) -> int:
        return sum(
            1 for end, _, kind in worker.outcomes if kind == "ok" and end < self.outage_start
        )

    def shortest_unavailable(self) -> float | None:
        """The shortest call that failed because Redis was unavailable."""
        times = [
            elapsed
            for w in self.workers
            for _, elapsed, kind in w.outcomes
            if kind == "RateLimiterUnavailableError"
        ]
        return min(times) if times else None

    def longest_ok(self) -> float:
        return max(elapsed for w in self.workers for _, elapsed, kind in w.outcomes if kind == "ok")

    def all_back(self) -> float | None:
        """When the last worker logged Redis reachable again after the outage."""
        backs = [max(w.back) for w in self.workers if w.back]
        return max(backs) if len(backs) == len(self.workers) else None

    def after_back(self) -> tuple[int, int] | None:
        """From the last switch-back on, the most arrivals in any 1 s window; and the 429s
        from 1 s after it, when the sandbox's window no longer holds fallback traffic."""
        moment = self.all_back()
        if moment is None:
            return None
        arrivals = self.arrivals[bisect_left(self.arrivals, moment) :]
        worst = start = 0
        for end, arrival in enumerate(arrivals):
            while arrivals[start] <= arrival - 1.0:
                start += 1
            worst = max(worst, end - start + 1)
        settled = moment + 1.0
        before = max((count for when, count in self.throttled if when <= settled), default=0)
        return worst, self.throttled[-1][1] - before


async def _sample_429s(fake: FakeCapillary, into: list[tuple[float, int]]) -> None:
    while True:
        into.append((time.monotonic(), fake.stats.by_status(IS_TRANSFERRABLE)[429]))
        await asyncio.sleep(SAMPLE_EVERY)


async def one_run(
    label: str,
    settings: dict[str, Any],
    concurrency: int,
    redis: RedisProcess,
    timeline: Timeline,
) -> Run:
    loop = asyncio.get_running_loop()
    throttled: list[tuple[float, int]] = []
    async with FakeCapillary(
        customers=CUSTOMERS, rate_limits={IS_TRANSFERRABLE: (LIMIT, 1.0)}
    ) as fake:
        namespace = f"bench-{uuid.uuid4().hex[:8]}"
        start_at = time.time() + 5.0  # time for the processes to start and connect
        with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [
                loop.run_in_executor(
                    pool,
                    worker,
                    settings,
                    concurrency,
                    redis.url,
                    fake.url,
                    namespace,
                    start_at,
                    timeline.duration,
                )
                for _ in range(WORKERS)
            ]
            sampler = asyncio.create_task(_sample_429s(fake, throttled))
            await asyncio.sleep(start_at - time.time() + timeline.before)
            outage_start = time.monotonic()
            await asyncio.to_thread(redis.stop)
            await asyncio.sleep(timeline.outage - (time.monotonic() - outage_start))
            await asyncio.to_thread(redis.start)
            outage_end = time.monotonic()
            workers = await asyncio.gather(*futures)
            sampler.cancel()
            throttled.append((time.monotonic(), fake.stats.by_status(IS_TRANSFERRABLE)[429]))
        return Run(
            label, outage_start, outage_end, workers, fake.arrivals(IS_TRANSFERRABLE), throttled
        )


def main() -> int:
    args = parse_args(__doc__.split("\n\n")[0])
    timeline = Timeline(3.0, 4.0, 4.0) if args.quick else Timeline(7.0, 6.0, 7.0)
    short_timeout = timeline.outage / 2
    recheck = 1.0 if args.quick else 5.0
    scenarios: list[tuple[str, dict[str, Any], int]] = [
        ("default", {}, 64),
        (f"acquire_timeout={short_timeout:g}", {"acquire_timeout": short_timeout}, 8),
        (
            f"fallback=True, recheck {recheck:g} s",
            {"fallback": True, "fallback_recheck": recheck},
            64,
        ),
    ]
    print(
        f"{WORKERS} workers, is_transferrable_many sharing RateLimit({LIMIT}, per=1.0) through "
        f"Redis; the sandbox admits {LIMIT}/s. Redis down from {timeline.before:g} s for "
        f"{timeline.outage:g} s, {timeline.duration:g} s in all."
    )
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-redis-outage-") as directory:
        redis = RedisProcess(Path(directory))
        redis.start()
        try:
            for label, settings, concurrency in scenarios:
                run = asyncio.run(one_run(label, settings, concurrency, redis, timeline))
                run.label = f"{label} (concurrency {concurrency})"
                runs.append(run)
        finally:
            redis.stop()

    rows = []
    for run in runs:
        kinds = sorted({kind for w in run.workers for _, _, kind in run.failures(w)})
        shortest = run.shortest_unavailable()
        rows.append(
            (
                run.label,
                "/".join(str(run.oks_before(w)) for w in run.workers),
                "/".join(str(len(run.failures(w))) for w in run.workers),
                ", ".join(kinds) or "-",
                "-" if shortest is None else f"{shortest:.2f}",
                f"{run.longest_ok():.2f}",
            )
        )
    print(
        table(
            ("limiter", "ok before", "failed", "errors", "unavailable after s", "longest ok s"),
            rows,
        )
    )
    print(
        "(per worker; 'unavailable after s': the shortest call that failed with "
        "RateLimiterUnavailableError)"
    )

    default, short, fallback = runs
    turns = [w.local_turns_after_back(fallback.outage_start) for w in fallback.workers]
    switched = [
        next((moment for moment in w.back if moment > fallback.outage_start), None)
        for w in fallback.workers
    ]
    after = fallback.after_back()
    print(f"\nfallback: Redis was back {fallback.outage_end - fallback.outage_start:.2f} s after")
    print("it stopped; from each worker's switch-back on:")
    print(
        table(
            ("worker", "switched back after Redis returned, s", "fallback turns after it"),
            [
                (
                    str(index + 1),
                    "never" if moment is None else f"{moment - fallback.outage_end:.2f}",
                    "-" if count is None else str(count),
                )
                for index, (moment, count) in enumerate(zip(switched, turns, strict=True))
            ],
        )
    )
    if after is not None:
        print(
            f"from the last switch-back on: at most {after[0]} arrivals in any 1 s window "
            f"(limit {LIMIT}; requests the fallback let through just before it may still be "
            f"on their way); from 1 s after it: {after[1]} answered 429"
        )

    checks = [
        Check(
            "default: no input fails during an outage shorter than acquire_timeout",
            all(not default.failures(w) for w in default.workers),
        ),
        Check(
            f"acquire_timeout={short_timeout:g}: Redis being away fails a call only after it",
            (short.shortest_unavailable() or short_timeout) >= short_timeout * 0.99,
        ),
        Check(
            "fallback: no input fails",
            all(not fallback.failures(w) for w in fallback.workers),
        ),
        Check(
            "fallback: no turn granted in-process after a worker's switch-back",
            all(count == 0 for count in turns),
        ),
    ]
    return report_checks(checks)


if __name__ == "__main__":
    sys.exit(main())
