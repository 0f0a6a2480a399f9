"""CPU per request: the full client against hand-rolled raw aiohttp, same server, same run.

The sandbox runs in a separate process, so only the client side's CPU is counted
(``time.process_time`` of this process). Both sides post the same body to the same endpoint
with 64 requests in flight; the client's limiter is off and retries are on, and its answers are
structured into attrs models, while the raw side stops at ``await resp.json()``. Rounds
alternate so that drift in the machine's speed hits both sides alike. Then the structuring cost
of the isTransferrable sample alone, cattrs against pydantic v2 and msgspec when installed, and
with ``--profile`` a cProfile of the client's run. Targets: at most 1.15x raw aiohttp for one
call at a time, 1.20x for ``is_transferrable_many``. A ratio is the median over rounds of the
client's CPU per request over raw aiohttp's in the same round, so that a machine whose load
changes between rounds moves both sides of each ratio alike. On a busy machine the ratios of
single rounds still spread by tens of percent; callgrind_call.py counts instructions of the
same three sides instead, a figure load cannot move, to hold a change against.

    .venv/bin/python benchmarks/bench_cpu.py [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import multiprocessing
import pstats
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from _common import Check, report_checks

from capillary_points_async import (
    BasicAuth,
    CapillaryClient,
    Identifier,
    RetryPolicy,
    TransferCheck,
    TransferCheckRequest,
)

CONCURRENCY = 64
# CPU per request through the client, as a multiple of raw aiohttp's.
TARGETS = {"client": 1.15, "bulk": 1.20}
SAMPLE = (
    Path(__file__).resolve().parent.parent / "tests" / "samples" / "istransferrable_page_200.json"
)
AUTH = BasicAuth("sandbox", "sandbox")
BODY = {
    "pointsTobeTransferred": 1,
    "groupProgramTransfer": False,
    "programId": 973,
    "fromCustomerIdentifier": {"type": "MOBILE", "value": "9777785206"},
    "toCustomerIdentifier": {"type": "MOBILE", "value": "9777785207"},
    "issueOtp": False,
}


# --------------------------------------------------------------------------- the server process


def _serve(conn: Connection) -> None:
    from capillary_points_async.testing import FakeCapillary

    async def main() -> None:
        async with FakeCapillary(seed=1) as fake:
            conn.send(fake.url)
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(main())


# --------------------------------------------------------------------------- the two sides


async def drive(total: int, one: Callable[[], Awaitable[Any]]) -> float:
    """CPU seconds this process spends on ``total`` calls of ``one``, CONCURRENCY at a time."""
    per_worker = total // CONCURRENCY

    async def worker() -> None:
        for _ in range(per_worker):
            await one()

    start = time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return (time.process_time() - start) / (per_worker * CONCURRENCY)


async def raw_round(url: str, total: int) -> float:
    headers = {"Authorization": AUTH.header, "Accept": "application/json"}
    body = orjson.dumps(BODY)
    target = f"{url}/v2/points/isTransferrable"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:

        async def one() -> Any:
            async with session.post(
                target, data=body, headers={**headers, "Content-Type": "application/json"}
            ) as resp:
                return await resp.json()

        await one()  # connect outside the measurement
        return await drive(total, one)


def _client(url: str) -> CapillaryClient:
    return CapillaryClient(url, AUTH, rate_limit=None, retry=RetryPolicy(), max_connections=100)


async def client_round(url: str, total: int) -> float:
    async with _client(url) as client:
        frm, to = Identifier.mobile("9777785206"), Identifier.mobile("9777785207")

        async def one() -> TransferCheck:
            return await client.points.is_transferrable(
                from_customer=frm, to_customer=to, points=1, program_id=973
            )

        await one()
        return await drive(total, one)


async def bulk_round(url: str, total: int) -> float:
    async with _client(url) as client:
        request = TransferCheckRequest(
            from_customer=Identifier.mobile("9777785206"),
            to_customer=Identifier.mobile("9777785207"),
            points=1,
            program_id=973,
        )
        await client.points.is_transferrable(
            from_customer=request.from_customer, to_customer=request.to_customer, points=1
        )
        start = time.process_time()
        ok = 0
        async for outcome in client.points.is_transferrable_many(
            (request for _ in range(total)), concurrency=CONCURRENCY
        ):
            ok += outcome.ok
        assert ok == total, f"{total - ok} bulk calls failed"
        return (time.process_time() - start) / total


# --------------------------------------------------------------------------- structuring alone


def structuring_costs(repeat: int) -> dict[str, float]:
    """Microseconds to turn the sample's bytes into objects, per library."""
    from multidict import CIMultiDict

    from capillary_points_async import RawResponse
    from capillary_points_async import _converter as conv
    from capillary_points_async._endpoints import IS_TRANSFERRABLE

    def decode_transfer_check(raw: RawResponse, now: float) -> dict[str, Any]:
        return IS_TRANSFERRABLE.decode(raw, now).fields()

    raw_bytes = SAMPLE.read_bytes()
    raw = RawResponse(200, CIMultiDict({"X-Cap-Requestid": "r"}), raw_bytes)

    def timed(fn: Callable[[], object]) -> float:
        fn()
        best = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(repeat):
                fn()
            best.append((time.perf_counter() - start) / repeat * 1e6)
        return min(best)

    import cattrs

    def cattrs_generated(detailed: bool) -> cattrs.Converter:
        converter = cattrs.Converter(detailed_validation=detailed, forbid_extra_keys=False)
        conv.configure_converter(converter, fast=False)
        return converter

    generated_fast, generated_detailed = cattrs_generated(False), cattrs_generated(True)
    results = {
        "orjson.loads only (floor)": timed(lambda: orjson.loads(raw_bytes)),
        "decode + compiled hooks on cattrs (the client)": timed(
            lambda: conv._FAST.structure(decode_transfer_check(raw, 0.0), TransferCheck)
        ),
        "decode + cattrs generated hooks, detailed_validation=False": timed(
            lambda: generated_fast.structure(decode_transfer_check(raw, 0.0), TransferCheck)
        ),
        "decode + cattrs generated hooks, detailed_validation=True": timed(
            lambda: generated_detailed.structure(decode_transfer_check(raw, 0.0), TransferCheck)
        ),
    }
    from _reference_models import msgspec_decoder, pydantic_envelope

    envelope = pydantic_envelope()
    if envelope is not None:
        results["pydantic v2 (model_validate_json)"] = timed(
            lambda: envelope.model_validate_json(raw_bytes)
        )
    decoder = msgspec_decoder()
    if decoder is not None:
        results["msgspec (typed Decoder)"] = timed(lambda: decoder.decode(raw_bytes))
    return results


# --------------------------------------------------------------------------- main


async def measure(url: str, total: int, rounds: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"raw": [], "client": [], "bulk": []}
    for _ in range(rounds):
        results["raw"].append(await raw_round(url, total))
        results["client"].append(await client_round(url, total))
        results["bulk"].append(await bulk_round(url, total))
    return results


async def profile_client(url: str, total: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    await client_round(url, total)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and rounds")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the client")
    args = parser.parse_args()
    total, rounds = (2_048, 3) if args.quick else (8_192, 5)

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        url = parent.recv()
        results = asyncio.run(measure(url, total, rounds))
        profile = asyncio.run(profile_client(url, total)) if args.profile else ""
    finally:
        parent.send("stop")
        server.join(10)

    raw = statistics.median(results["raw"])
    print(f"CPU per request, {total} requests x {rounds} rounds, {CONCURRENCY} in flight (median)")
    print(f"  raw aiohttp post + resp.json()          {raw * 1e6:8.1f} us   1.00x (baseline)")
    checks = []
    for name, label in (
        ("client", "client.points.is_transferrable"),
        ("bulk", "is_transferrable_many"),
    ):
        value = statistics.median(results[name])
        ratio = statistics.median(v / r for v, r in zip(results[name], results["raw"], strict=True))
        print(f"  {label:<38} {value * 1e6:8.1f} us   {ratio:.2f}x")
        target = TARGETS[name]
        checks.append(Check(f"{label}: {ratio:.2f}x <= {target}x raw aiohttp", ratio <= target))
    print()
    print("Structuring the isTransferrable sample (best of 5, per call)")
    costs = structuring_costs(2_000 if args.quick else 10_000)
    floor = costs["orjson.loads only (floor)"]
    for name, micros in costs.items():
        print(f"  {name:<58} {micros:8.1f} us   {micros / floor:5.1f}x orjson.loads")
    if profile:
        print()
        print(profile)
    print()
    return report_checks(checks)


if __name__ == "__main__":
    sys.exit(main())
