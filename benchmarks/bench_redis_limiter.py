"""RedisRateLimiter against the in-process limiter, measured in the same run.

Starts its own redis-server (no persistence, free loopback port, temporary directory) and
prints two tables:

1. Sharing: N worker processes draw grants from one RateLimit, each with the Redis limiter (one
   shared quota) and, as the baseline, each with its own InProcessRateLimiter (N quotas). For
   each: grants, aggregate rate, the bucket's drain rate, and the worst window of ``per``
   seconds against ``limit``.
2. Latency: the cost of one acquire that does not have to wait (p50/p99 in microseconds), for
   the in-process limiter and for Redis (a token, and a cooldown check only).

Run: ``.venv/bin/python benchmarks/bench_redis_limiter.py [--processes 4] [--limit 100]``.
Needs ``redis-server`` on PATH (``apt-get install redis-server``) and redis-py
(``pip install -e '.[redis]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from _common import RedisProcess

from capillary_points_async import InProcessRateLimiter, RateLimit, RateLimiter
from capillary_points_async.redis import RedisRateLimiter

KEY = "v2/points/isTransferrable"


# -- sharing: N processes -----------------------------------------------------------------------


def worker(
    kind: str, url: str, namespace: str, limit: RateLimit, count: int, tasks: int, start_at: float
) -> list[float]:
    """One process: ``count`` acquires, ``tasks`` at a time; returns when each was granted."""

    async def run() -> list[float]:
        limiter: RateLimiter = (
            RedisRateLimiter.from_url(url, namespace=namespace)
            if kind == "redis"
            else InProcessRateLimiter()
        )
        try:
            await limiter.acquire("warm-up", None)  # connect before the clock starts
            await asyncio.sleep(max(0.0, start_at - time.time()))  # all processes start together
            granted: list[float] = []
            remaining = count

            async def one_task() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    await limiter.acquire(KEY, limit)
                    granted.append(time.monotonic())  # system-wide clock on Linux and macOS

            await asyncio.gather(*(one_task() for _ in range(tasks)))
            return granted
        finally:
            await limiter.aclose()

    return asyncio.run(run())


def worst_window(times: Sequence[float], window: float) -> int:
    ordered = sorted(times)
    best = start = 0
    for end, moment in enumerate(ordered):
        while ordered[start] <= moment - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def sharing(
    kind: str, url: str, limit: RateLimit, processes: int, requests: int, tasks: int
) -> list[float]:
    context = multiprocessing.get_context("spawn")
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    start_at = time.time() + 2.0  # time for the processes to start and connect
    per_process = requests // processes
    with context.Pool(processes) as pool:
        results = pool.starmap(
            worker,
            [(kind, url, namespace, limit, per_process, tasks, start_at)] * processes,
        )
    return [moment for result in results for moment in result]


# -- latency: one process -----------------------------------------------------------------------


async def latencies(limiter: RateLimiter, limit: RateLimit | None, samples: int) -> list[float]:
    for _ in range(50):  # warm up connections and caches
        await limiter.acquire(KEY, limit)
    measured = []
    for _ in range(samples):
        started = time.perf_counter()
        await limiter.acquire(KEY, limit)
        measured.append(time.perf_counter() - started)
    return measured


def percentile(values: Sequence[float], share: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1]


async def latency_table(url: str, samples: int) -> list[tuple[str, list[float]]]:
    never_waits = RateLimit(10**9, per=1.0)  # a bucket that never makes anyone wait
    rows = []
    local = InProcessRateLimiter()
    rows.append(("in-process, token", await latencies(local, never_waits, samples)))
    await local.aclose()
    shared = RedisRateLimiter.from_url(url, namespace=f"bench-{uuid.uuid4().hex[:8]}")
    try:
        rows.append(("redis, token", await latencies(shared, never_waits, samples)))
        rows.append(("redis, cooldown check only", await latencies(shared, None, samples)))
    finally:
        await shared.aclose()
    return rows


# -- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--limit", type=int, default=100, help="requests per window")
    parser.add_argument("--per", type=float, default=1.0, help="window in seconds")
    parser.add_argument("--requests", type=int, default=400, help="grants in all, per run")
    parser.add_argument("--tasks", type=int, default=16, help="concurrent acquires per process")
    parser.add_argument("--samples", type=int, default=3000, help="latency samples")
    parser.add_argument("--quick", action="store_true", help="half the grants and samples")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.samples = args.requests // 2, args.samples // 2
    limit = RateLimit(args.limit, per=args.per)

    with tempfile.TemporaryDirectory(prefix="bench-redis-") as directory:
        server = RedisProcess(Path(directory))
        server.start()
        url = server.url
        try:
            print(
                f"{args.processes} processes x {args.tasks} tasks, {args.requests} grants, "
                f"RateLimit({args.limit}, per={args.per}): drain rate {limit.rate:.1f}/s"
            )
            print(f"{'limiter':<34}{'grants':>8}{'rate/s':>10}{'worst window':>14}{'limit':>7}")
            for kind, label in (
                ("in-process", "in-process (one quota per process)"),
                ("redis", "redis (one shared quota)"),
            ):
                granted = sharing(kind, url, limit, args.processes, args.requests, args.tasks)
                span = max(granted) - min(granted)
                rate = (len(granted) - 1) / span if span > 0 else float("inf")
                worst = worst_window(granted, args.per)
                print(f"{label:<34}{len(granted):>8}{rate:>10.1f}{worst:>14}{args.limit:>7}")

            print(f"\nacquire latency without waiting, {args.samples} sequential samples")
            print(f"{'limiter':<30}{'p50 us':>10}{'p99 us':>10}")
            for label, values in asyncio.run(latency_table(url, args.samples)):
                p50, p99 = percentile(values, 0.50) * 1e6, percentile(values, 0.99) * 1e6
                print(f"{label:<30}{p50:>10.1f}{p99:>10.1f}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
