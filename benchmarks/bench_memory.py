"""Bulk memory: does RSS stay flat however many inputs stream through is_transferrable_many?

Each case runs in a fresh subprocess, so that one case's heap does not inflate the next one's
RSS. A case warms the client up, notes VmRSS, streams N generated inputs through the client at
concurrency 64 while a thread samples VmRSS every few milliseconds, and reports the peak minus
the start. The transport is a fake in-process one answering the documentation's sample bytes,
with ``rate_limit=None``, so that 100,000 calls fit in the time budget.

Cases: ``is_transferrable_many`` (lazy) for 2,000 and 100,000 inputs; the baseline, in the same
run, is the naive ``asyncio.gather`` of one ``is_transferrable`` coroutine per input behind a
semaphore of 64. Target: the lazy growth does not depend on N and stays within 15 MB.

    .venv/bin/python benchmarks/bench_memory.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from _common import (
    Check,
    report_checks,
    reset_peak_rss,
    status_kib,
    table,
    transfer_requests,
    write_json,
)
from multidict import CIMultiDict

from capillary_points_async import (
    ApiRequest,
    BasicAuth,
    CapillaryClient,
    RawResponse,
    TransferCheckRequest,
)

CONCURRENCY = 64
CUSTOMERS = 1_000
GROWTH_LIMIT_MB = 15.0
# How much more the lazy run may grow for the big N than for the small one and still count as
# independent of N: allocator arenas and the odd GC generation come in a few MB.
INDEPENDENCE_SLACK_MB = 3.0
WARM_UP = 200
SAMPLE_EVERY = 0.005
SAMPLE = (
    Path(__file__).resolve().parent.parent / "tests" / "samples" / "istransferrable_page_200.json"
)
MODES = {
    "lazy": "is_transferrable_many (lazy)",
    "gather": "asyncio.gather + Semaphore(64) (naive)",
}


class SampleTransport:
    """Answers every request with the isTransferrable page's sample, as Capillary would.

    One ``sleep(0)`` per request stands for the network round trip: it lets the other calls
    run, so that 64 are really in flight at once as they would be against a server.
    """

    def __init__(self) -> None:
        self._body = SAMPLE.read_bytes()
        self._sent = 0

    async def send(self, request: ApiRequest) -> RawResponse:
        await asyncio.sleep(0)
        self._sent += 1
        return RawResponse(200, CIMultiDict({"X-Cap-Requestid": f"bench-{self._sent}"}), self._body)

    async def aclose(self) -> None:
        pass


# -- one case, in its own process --------------------------------------------------------------


class RssSampler(threading.Thread):
    """Samples VmRSS from a thread, so that samples are taken even while the event loop is
    busy in one long step (the naive case creates every task in one go)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_kib = status_kib("VmRSS")
        self.samples = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(SAMPLE_EVERY):
            self.peak_kib = max(self.peak_kib, status_kib("VmRSS"))
            self.samples += 1

    def stop(self) -> None:
        self._done.set()
        self.join()
        self.peak_kib = max(self.peak_kib, status_kib("VmRSS"))


def _inputs(count: int) -> Iterator[TransferCheckRequest]:
    return itertools.islice(transfer_requests(CUSTOMERS), count)


async def _lazy(client: CapillaryClient, count: int) -> int:
    answered = 0
    async for outcome in client.points.is_transferrable_many(
        _inputs(count), concurrency=CONCURRENCY
    ):
        answered += outcome.ok
    return answered


async def _gather(client: CapillaryClient, count: int) -> int:
    # What a first version usually looks like: a coroutine per input up front, all results
    # held until the last one is in.
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(request: TransferCheckRequest) -> object:
        async with gate:
            return await client.points.is_transferrable(
                from_customer=request.from_customer,
                to_customer=request.to_customer,
                points=request.points,
            )

    results = await asyncio.gather(
        *[one(request) for request in _inputs(count)], return_exceptions=True
    )
    return sum(not isinstance(result, BaseException) for result in results)


@dataclass
class CaseResult:
    mode: str
    inputs: int
    answered: int
    seconds: float
    start_kib: int
    peak_kib: int  # the highest of the samples and of VmHWM
    samples: int

    @property
    def growth_mb(self) -> float:
        return (self.peak_kib - self.start_kib) / 1024


async def run_case(mode: str, count: int) -> CaseResult:
    run = _lazy if mode == "lazy" else _gather
    # The base URL is never dialled: the fake transport answers in-process.
    async with CapillaryClient(
        "http://127.0.0.1",
        BasicAuth("bench", "bench"),
        rate_limit=None,
        transport=SampleTransport(),
    ) as client:
        # Warm up first (cattrs builds its structuring code on first use, imports settle), so
        # that the small case is not charged for one-off costs. Only the path measured: memory
        # the other one grew and freed would be reused unseen.
        await run(client, WARM_UP)
        gc.collect()
        has_hwm = reset_peak_rss()
        sampler = RssSampler()
        start_kib = sampler.peak_kib
        sampler.start()
        began = time.perf_counter()
        answered = await run(client, count)
        seconds = time.perf_counter() - began
        sampler.stop()
        peak = max(sampler.peak_kib, status_kib("VmHWM") if has_hwm else 0)
        return CaseResult(mode, count, answered, seconds, start_kib, peak, sampler.samples)


# -- the parent: cases in subprocesses, then the report ----------------------------------------


def _spawn(mode: str, count: int) -> subprocess.Popen[str]:
    command = [sys.executable, __file__, "--case", mode, "--inputs", str(count)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def _collect(process: subprocess.Popen[str]) -> CaseResult:
    out, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"case {process.args!r} exited with {process.returncode}")
    return CaseResult(**json.loads(out))


def run_cases(small: int, large: int) -> list[CaseResult]:
    """The small cases one after another, then both large ones side by side: each is a single
    thread, so on two cores they do not slow each other down, and RSS is per process."""
    results = [_collect(_spawn(mode, small)) for mode in MODES]
    large_runs = [_spawn(mode, large) for mode in MODES]
    results += [_collect(process) for process in large_runs]
    return results


def report(results: list[CaseResult]) -> tuple[str, list[Check]]:
    by_case = {(result.mode, result.inputs): result for result in results}
    small, large = sorted({result.inputs for result in results})
    rows = [
        (
            MODES[result.mode],
            f"{result.inputs:,}",
            f"{result.answered:,}",
            f"{result.seconds:.1f} s",
            f"{result.start_kib / 1024:.1f} MB",
            f"{result.peak_kib / 1024:.1f} MB",
            f"{result.growth_mb:.1f} MB",
            f"{result.growth_mb * 1024 * 1024 / result.inputs:,.0f} B",
        )
        for result in results
    ]
    lazy_small, lazy_large = by_case["lazy", small], by_case["lazy", large]
    naive_large = by_case["gather", large]
    extra = lazy_large.growth_mb - lazy_small.growth_mb
    lines = [
        f"== RSS growth (peak - start) streaming N inputs, concurrency {CONCURRENCY}, "
        "fake in-process transport, rate_limit=None, one subprocess per case",
        table(
            ("case", "inputs", "answered", "time", "start", "peak", "growth", "per input"),
            rows,
        ),
        f"lazy growth, {large:,} vs {small:,} inputs: {lazy_large.growth_mb:.1f} MB vs "
        f"{lazy_small.growth_mb:.1f} MB ({extra:+.1f} MB for {large - small:,} more inputs)",
        f"naive at {large:,} inputs: {naive_large.growth_mb:.0f} MB more "
        f"({naive_large.growth_mb * 1024 / large:.1f} KB per input: a task, a coroutine and a "
        f"result each, all held to the end) and {naive_large.seconds / lazy_large.seconds:.2f}x "
        "the lazy run's time",
    ]
    checks = [
        Check(
            "every input answered in every case",
            all(result.answered == result.inputs for result in results),
            hard=True,
        ),
        Check(
            f"lazy growth <= {GROWTH_LIMIT_MB:g} MB at every N "
            f"({max(lazy_small.growth_mb, lazy_large.growth_mb):.1f} MB)",
            max(lazy_small.growth_mb, lazy_large.growth_mb) <= GROWTH_LIMIT_MB,
        ),
        Check(
            f"lazy growth independent of N ({extra:+.1f} MB <= {INDEPENDENCE_SLACK_MB:g} MB)",
            extra <= INDEPENDENCE_SLACK_MB,
        ),
    ]
    return "\n".join(lines), checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a shorter run (smoke test)")
    parser.add_argument("--case", choices=sorted(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--inputs", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case is not None:
        result = asyncio.run(run_case(args.case, args.inputs))
        print(json.dumps(asdict(result)))
        return 0
    results = run_cases(2_000, 20_000 if args.quick else 100_000)
    text, checks = report(results)
    print(text, end="\n\n")
    status = report_checks(checks)
    saved = write_json("memory.json", [asdict(result) for result in results])
    print(f"results: {saved}")
    return status


if __name__ == "__main__":
    sys.exit(main())
