"""Four worker processes, each with its own CapillaryClient, share one quota through Redis.

The sandbox (FakeCapillary) logs every arrival as a gateway would and rate-limits 50 per second
itself; the workers (``mp_worker.py``) are real processes that start, connect, and then wait for
the test's ``go``, so that they all begin together. Two phases:

0. Each worker sends one request to warm up (see mp_worker.py); the phases start after it.
1. ~250 requests: no 1-second window of arrivals above 50, a steady rate of at least 45/s, and
   no 429 from the sandbox.
2. The sandbox answers the next request 429 with ``Retry-After: 1``; the worker that gets it
   stores the cooldown in Redis and every worker pauses: the arrival log goes quiet.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("redis", reason="redis-py is missing: pip install -e '.[redis]'")

from capillary_points_async.testing import VALIDATION_CODE, FakeCapillary, Faults, max_in_window

from .redis_helpers import RedisServer

WORKERS = 4
PER_WORKER = 63  # 252 requests in all
PHASE_TWO_PER_WORKER = 10
LIMIT, PER = 50, 1.0  # mp_worker.LIMIT: RateLimit(50, per=1.0, safety_margin=0.05)
REPO = Path(__file__).resolve().parents[2]
LINE_TIMEOUT = 120.0  # generous: only there so that a broken worker cannot hang the run


class Worker:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def expect(self, event: str) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), LINE_TIMEOUT)
        if not line:
            assert self.process.stderr is not None
            error = (await self.process.stderr.read()).decode(errors="replace")
            pytest.fail(f"worker exited before {event!r}:\n{error}")
        message: dict[str, Any] = json.loads(line)
        assert message["event"] == event, message
        return message

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")

    async def stop(self) -> None:
        if self.process.returncode is None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()


async def spawn(redis_url: str, sandbox_url: str, namespace: str) -> Worker:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.redis.mp_worker",
        redis_url,
        sandbox_url,
        namespace,
        str(PER_WORKER),
        str(PHASE_TWO_PER_WORKER),
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return Worker(process)


async def all_done(workers: Sequence[Worker], expected: int) -> None:
    reports = await asyncio.gather(*(worker.expect("done") for worker in workers))
    for report in reports:
        assert report["errors"] == []
        assert report["ok"] == expected


async def test_four_processes_share_one_quota_and_one_cooldown(
    redis_server: RedisServer, namespace: str
) -> None:
    async with FakeCapillary(rate_limits=(LIMIT, PER)) as fake:
        workers = [await spawn(redis_server.url, fake.url, namespace) for _ in range(WORKERS)]
        try:
            await asyncio.gather(*(worker.expect("ready") for worker in workers))
            warm_up = len(fake.arrivals(VALIDATION_CODE))  # one request per worker

            # Phase 1: steady load from four processes.
            for worker in workers:
                worker.go()
            await all_done(workers, PER_WORKER)
            arrivals = fake.arrivals(VALIDATION_CODE)[warm_up:]
            worst = max_in_window(arrivals, PER)
            steady = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
            print(f"\nphase 1: {len(arrivals)} requests, worst 1-s window {worst}, {steady:.1f}/s")
            assert len(arrivals) == WORKERS * PER_WORKER
            assert worst <= LIMIT
            assert steady >= 45
            assert fake.stats.by_status(VALIDATION_CODE)[429] == 0

            # Phase 2: one 429 to one worker pauses all four.
            fake.set_faults(Faults(throttle_rate=1.0, throttle_retry_after=1, for_requests=1))
            for worker in workers:
                worker.go()
            await all_done(workers, PHASE_TWO_PER_WORKER)
            later = fake.arrivals(VALIDATION_CODE)[warm_up + len(arrivals) :]
            assert fake.stats.by_status(VALIDATION_CODE)[429] == 1
            # Throttled plus the retried one.
            assert len(later) == WORKERS * PHASE_TWO_PER_WORKER + 1
            throttled_at = later[0]
            # Requests already on the wire when the 429 left may still arrive just after it;
            # then nothing, from any process, until the second of Retry-After has passed.
            quiet = [t for t in later if throttled_at + 0.25 < t < throttled_at + 0.9]
            gap = max(b - a for a, b in itertools.pairwise(later))
            print(f"phase 2: arrivals paused {gap:.3f} s after the 429")
            assert quiet == []
            assert max_in_window(later, PER) <= LIMIT
        finally:
            await asyncio.gather(*(worker.stop() for worker in workers))
