"""Instructions per request (callgrind): the client against raw aiohttp, a measure load cannot move.

bench_cpu.py times the client with ``time.process_time``, which a busy machine inflates by
several percent from one round to the next; instruction counts stay put, so this is the
figure to hold a change against. Each of bench_cpu's three sides (raw aiohttp ``post`` +
``resp.json()``, ``client.points.is_transferrable``, ``is_transferrable_many``, 64 in flight)
runs under ``valgrind --tool=callgrind`` twice, with N and with 2N requests, against one sandbox
in a process valgrind does not trace; start-up, imports and warm-up are the same in both runs,
so ``(Ir(2N) - Ir(N)) / N`` is what one request costs. Targets as bench_cpu's. What is left
to vary is how the answers arrive (in how many reads, how many per turn of the event loop):
one pair of runs repeats within about 1% for single calls and may be 5% off for bulk, so
``--repeat`` takes the median of several pairs.

    .venv/bin/python benchmarks/callgrind_call.py [--requests N] [--repeat R] [--jobs J]
        [--sides raw client bulk]

Needs ``valgrind`` on PATH (``apt-get install valgrind``). Takes a few minutes: callgrind runs
Python about 50 times slower.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bench_cpu
from _common import Check, report_checks

SIDES = {
    "raw": ("raw aiohttp post + resp.json()", bench_cpu.raw_round),
    "client": ("client.points.is_transferrable", bench_cpu.client_round),
    "bulk": ("is_transferrable_many", bench_cpu.bulk_round),
}
_COLLECTED = re.compile(r"Collected : (\d+)")


def work(side: str, total: int, url: str) -> None:
    """The traced process: ``total`` requests of one side."""
    # Whatever the imports left for the collector is frozen, so that a full collection costs
    # the same whenever it falls; the requests' own garbage is still collected as usual.
    gc.collect()
    gc.freeze()
    asyncio.run(SIDES[side][1](url, total))


def instructions(side: str, total: int, repeat: int, url: str, keep: Path | None) -> int:
    """Instructions (callgrind's Ir) a whole run of ``total`` requests of ``side`` takes."""
    with tempfile.TemporaryDirectory() as scratch:
        out = (keep or Path(scratch)) / f"callgrind.{side}.{total}.{repeat}"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--work",
            side,
            str(total),
            url,
        ]
        # A fixed hash seed: dict and set layouts, and so the instructions, repeat run to run.
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        sys.exit(f"valgrind run of {side} x {total} failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=1024, help="N, a multiple of 64 (default 1024)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="valgrind runs at a time (default 2)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="pairs of runs per side, the median kept (default 1)"
    )
    parser.add_argument("--sides", nargs="+", choices=list(SIDES), default=list(SIDES))
    parser.add_argument("--keep", type=Path, help="keep the callgrind output files in this folder")
    parser.add_argument("--work", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.work:
        side, total, url = args.work
        work(side, int(total), url)
        return 0
    if shutil.which("valgrind") is None:
        sys.exit("valgrind not found on PATH: apt-get install valgrind")
    n = args.requests
    if n <= 0 or n % bench_cpu.CONCURRENCY:
        sys.exit(f"--requests must be a positive multiple of {bench_cpu.CONCURRENCY}")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=bench_cpu._serve, args=(child,), daemon=True)
    server.start()
    try:
        url = parent.recv()
        runs = [
            (side, total, i)
            for i in range(args.repeat)
            for side in args.sides
            for total in (n, 2 * n)
        ]
        with ThreadPoolExecutor(args.jobs) as pool:
            counts = dict(
                zip(
                    runs,
                    pool.map(lambda run: instructions(*run, url, args.keep), runs),
                    strict=True,
                )
            )
    finally:
        parent.send("stop")
        server.join(10)

    per_request = {
        side: statistics.median(
            (counts[side, 2 * n, i] - counts[side, n, i]) / n for i in range(args.repeat)
        )
        for side in args.sides
    }
    print(
        f"Instructions per request (callgrind Ir, runs of {n} and {2 * n} requests, "
        f"median of {args.repeat})"
    )
    raw = per_request.get("raw")
    checks = []
    for side, value in per_request.items():
        label = SIDES[side][0]
        ratio = f"{value / raw:5.3f}x" if raw else ""
        print(f"  {label:<38} {value / 1e3:9.1f}k   {ratio}")
        target = bench_cpu.TARGETS.get(side)
        if raw and target is not None:
            checks.append(
                Check(
                    f"{label}: {value / raw:.3f}x <= {target}x raw aiohttp", value / raw <= target
                )
            )
    print()
    return report_checks(checks)


if __name__ == "__main__":
    sys.exit(main())
