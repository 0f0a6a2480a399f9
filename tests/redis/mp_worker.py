"""One worker process of the multi-process test: a CapillaryClient sharing its quota via Redis.

Run as ``python -m tests.redis.mp_worker REDIS_URL SANDBOX_URL NAMESPACE N [N...]``. It talks
to the test over its standard streams, one JSON object a line: it says ``{"event": "ready"}``
once its client and limiter are connected, then for every ``N`` waits for a ``go`` line on
stdin, issues ``N`` validation codes (``CONCURRENCY`` at a time) and reports
``{"event": "done", "ok": ..., "errors": [...]}``. Before it says ready it sends one request
of its own, to warm up.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from capillary_points_async import (
    BasicAuth,
    CapillaryClient,
    Identifier,
    RateLimit,
    ValidationCodeRequest,
)
from capillary_points_async.redis import RedisRateLimiter

# 50 per second. The default safety margin (2% of the window) is sized for Capillary's minute
# windows, where it is 1.2 s; of a 1-second window it leaves 20 ms, less than a busy 2-core
# machine can delay one process's send behind another's (measured: up to ~30 ms when four
# workers start together next to a CPU-bound process). 5% keeps the test about the limiter,
# not the scheduler, and still drains at 47.6/s.
LIMIT = RateLimit(50, per=1.0, safety_margin=0.05)
CONCURRENCY = 8
MOBILE = "919777785205"  # one of the sandbox's seeded customers


def say(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


async def wait_for_go() -> None:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if line.strip() != "go":
        raise SystemExit(f"expected 'go', got {line!r}")


async def main(redis_url: str, sandbox_url: str, namespace: str, phases: list[int]) -> None:
    limiter = RedisRateLimiter.from_url(redis_url, namespace=namespace)
    auth = BasicAuth("sandbox", "sandbox")
    async with CapillaryClient(sandbox_url, auth, rate_limit=LIMIT, limiter=limiter) as client:
        # Warm up before saying ready: open the Redis connections the tasks will use, connect to
        # the sandbox, and run the code paths a first request runs (cattrs builds its
        # structuring functions on first use), so that a cold start does not delay the first
        # measured requests behind their slots.
        await asyncio.gather(*(limiter.acquire("warm-up", None) for _ in range(CONCURRENCY)))
        await client.points.issue_validation_code(Identifier.mobile(MOBILE), 100)
        say({"event": "ready"})
        for count in phases:
            await wait_for_go()
            requests = (ValidationCodeRequest(Identifier.mobile(MOBILE), 100) for _ in range(count))
            ok, errors = 0, []
            async for outcome in client.points.issue_validation_code_many(
                requests, concurrency=CONCURRENCY
            ):
                if outcome.ok:
                    ok += 1
                else:
                    errors.append(repr(outcome.error))
            say({"event": "done", "ok": ok, "errors": errors})


if __name__ == "__main__":
    redis_url, sandbox_url, namespace, *counts = sys.argv[1:]
    asyncio.run(main(redis_url, sandbox_url, namespace, [int(count) for count in counts]))
