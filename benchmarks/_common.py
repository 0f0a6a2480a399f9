"""Helpers shared by the benchmarks in this folder (not part of the package or its tests).

Every benchmark runs as ``.venv/bin/python benchmarks/bench_X.py [--quick]``, so this module is
imported as a top-level ``_common`` from the script's own directory.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import socket
import subprocess
import sys
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capillary_points_async import BasicAuth, Identifier, TransferCheckRequest

__all__ = [
    "IS_TRANSFERRABLE",
    "REDIS_MISSING",
    "SANDBOX_AUTH",
    "Check",
    "Feed",
    "RedisProcess",
    "parse_args",
    "report_checks",
    "reset_peak_rss",
    "results_dir",
    "sandbox_mobile",
    "sliding_counts",
    "status_kib",
    "steady_rate",
    "table",
    "transfer_csv",
    "transfer_requests",
    "write_json",
]

IS_TRANSFERRABLE = "v2/points/isTransferrable"
#: The sandbox's default till credentials.
SANDBOX_AUTH = BasicAuth("sandbox", "sandbox")

_RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options every benchmark takes: ``--quick`` for a shorter, noisier run."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a shorter run (smoke test)")
    return parser.parse_args(argv)


def results_dir() -> Path:
    """``benchmarks/results/``, created on demand (it is git-ignored)."""
    _RESULTS.mkdir(parents=True, exist_ok=True)
    return _RESULTS


def write_json(name: str, payload: Any) -> Path:
    path = results_dir() / name
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def sandbox_mobile(index: int) -> str:
    """The mobile number of the sandbox's generated customer ``index``
    (the scheme :func:`capillary_points_async.testing.generate_customers` documents)."""
    return f"918{index:09d}"


def transfer_requests(customers: int) -> Iterator[TransferCheckRequest]:
    """An endless stream of valid checks between neighbouring generated customers.

    Built lazily, one request at a time, so that the memory benchmark measures the client and
    not a pre-built input list.
    """
    for index in itertools.count():
        source = index % customers
        yield TransferCheckRequest(
            from_customer=Identifier.mobile(sandbox_mobile(source)),
            to_customer=Identifier.mobile(sandbox_mobile((source + 1) % customers)),
            points=1,
        )


def transfer_csv(path: Path, rows: int, customers: int) -> Path:
    """The first ``rows`` checks of :func:`transfer_requests` as the CLI's CSV input
    (``from,to,points`` with ``TYPE:VALUE`` identifiers): data rows on lines 2 to rows + 1."""
    with path.open("w", encoding="utf-8") as file:
        file.write("from,to,points\n")
        for request in itertools.islice(transfer_requests(customers), rows):
            source, target = request.from_customer, request.to_customer
            file.write(
                f"{source.type.value}:{source.value},{target.type.value}:{target.value},"
                f"{request.points}\n"
            )
    return path


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB: ``VmRSS`` (now) or ``VmHWM`` (the peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset VmHWM, the kernel's own peak RSS, so that it covers what follows only
    (Linux >= 4.0); False where it cannot be reset."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


class Feed:
    """Hands out items until a deadline on ``clock`` has passed, counting what it gave.

    A bulk call reads its input lazily, so stopping the input at a deadline bounds a run's
    length without knowing the achieved rate in advance; ``given`` is the number of inputs
    that every outcome count must match.
    """

    def __init__(self, items: Iterable[Any], clock: Callable[[], float], deadline: float) -> None:
        self._items = iter(items)
        self._clock = clock
        self._deadline = deadline
        self.given = 0

    def __iter__(self) -> Iterator[Any]:
        for item in self._items:
            if self._clock() >= self._deadline:
                return
            self.given += 1
            yield item


def steady_rate(times: Sequence[float], skip: float) -> float:
    """Requests per second over sorted ``times`` after the first ``skip`` seconds.

    Skipping the first window leaves out the start-up transient (a bucket's first burst, the
    first connections), so what remains is the rate the limiter settles at.
    """
    steady = times[bisect_right(times, times[0] + skip) :]
    if len(steady) < 2 or steady[-1] <= steady[0]:
        return 0.0
    return (len(steady) - 1) / (steady[-1] - steady[0])


def sliding_counts(
    times: Sequence[float], window: float, step: float
) -> tuple[list[float], list[int]]:
    """How many of the sorted ``times`` fall in ``(t - window, t]``, every ``step`` seconds
    from the first time to the last: the quantity a server's sliding window limits."""
    if not times:
        return [], []
    start, end = times[0], times[-1]
    xs: list[float] = []
    counts: list[int] = []
    steps = int((end - start) / step) + 1
    for i in range(steps + 1):
        moment = start + i * step
        xs.append(moment - start)
        counts.append(bisect_right(times, moment) - bisect_right(times, moment - window))
    return xs, counts


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain text table, first column left-aligned and the others right-aligned."""
    cells = [[str(cell) for cell in headers]] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


@dataclass(frozen=True)
class Check:
    """One verdict of a benchmark.

    ``hard`` checks are invariants (never over the limit, one outcome per input): breaking one
    is a bug and fails the benchmark. The others are performance targets: a miss is reported
    loudly but does not fail the run, since a loaded two-core machine can miss one by noise.
    """

    text: str
    ok: bool
    hard: bool = False


def report_checks(checks: Sequence[Check]) -> int:
    """Print the verdicts; the exit status is 1 when an invariant broke, else 0."""
    print("checks (FAIL: a broken invariant; MISS: a performance target not reached):")
    for check in checks:
        verdict = "PASS" if check.ok else ("FAIL" if check.hard else "MISS")
        kind = "invariant" if check.hard else "target"
        print(f"  {verdict}  [{kind}] {check.text}")
    return 1 if any(check.hard and not check.ok for check in checks) else 0


REDIS_MISSING = "redis-server not found on PATH: apt-get install redis-server"


class RedisProcess:
    """A throw-away redis-server (no persistence, a free loopback port, its log in
    ``directory``) that can be stopped and started again on the same port. Without the
    ``redis-server`` binary the benchmark stops with :data:`REDIS_MISSING`."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            sys.exit(REDIS_MISSING)
        self._binary = binary
        self._directory = directory
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        # fmt: off
        command = [
            self._binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._directory),
            "--logfile", str(self._directory / "redis.log"),
        ]
        # fmt: on
        self._process = subprocess.Popen(command)
        deadline = time.monotonic() + 15
        while not self._accepts():  # ready once the port accepts connections
            if time.monotonic() > deadline or self._process.poll() is not None:
                self._process.kill()
                sys.exit("redis-server did not start")
            time.sleep(0.01)

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None
