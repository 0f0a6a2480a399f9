"""A bulk run killed and resumed, with an outage in the resumed part: is every row there exactly
once, none failed, and what did the disturbance cost?

The real command line (``capillary-points bulk-transferrable INPUT --output OUT --rate off
--max-outage 120``) runs 100,000 CSV rows against one sandbox (``FakeCapillary``, no rate
limit, 1,000 generated customers) served by a subprocess of its own, so that the CLI has a
core to itself and the run is CPU-bound:

* **undisturbed**: the rows into a fresh output, start to exit;
* **disturbed**: the same rows into another fresh output; the CLI is killed with SIGKILL once
  the output holds 40% of the rows; then ``--resume`` finishes it, and when the output holds
  70% the sandbox goes down for 10 s (it stops listening and drops its connections).

Reported: wall time of both (the disturbed one is its two parts, each from process start),
against the target ``disturbed <= 1.10 x undisturbed + the outage``; the rows the resumed run
skipped, as its summary prints them; the requests the sandbox saw and answered (rows answered
twice are the ones in flight at the kill; requests never answered were cut by the kill or the
outage); how long after the sandbox came back the first request arrived (the client's probe
backoff); the resumed run's start-up. Checked: every input line exactly once in the final
output, every row ok (none failed by the outage), exit status 0.

Then the resume scan alone (the function the CLI reads an output back with), in a fresh
subprocess each: time and peak RSS for the final output and for a synthetic output 10 times
as long (its lines repeated with distinct line numbers); the baseline, in the same run, is a
plain line count of the same file, ``sum(1 for _ in open(path, "rb"))``, in the same kind of
subprocess (same imports).

    .venv/bin/python benchmarks/bench_bulk_resume.py [--quick]

``--quick``: 10,000 rows and a 3 s outage. Needs about 0.4 GB of temporary disk per 10,000
rows of the synthetic output (a result line is about 3.7 kB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from bisect import bisect_left
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from _common import (
    IS_TRANSFERRABLE,
    SANDBOX_AUTH,
    Check,
    report_checks,
    reset_peak_rss,
    status_kib,
    table,
    transfer_csv,
    write_json,
)

from capillary_points_async.testing import FakeCapillary, Faults

CUSTOMERS = 1_000
KILL_AT = 0.40  # share of the rows in the output when the first run is killed
OUTAGE_AT = 0.70  # share of the rows in the output when the sandbox goes down
MAX_OUTAGE = 120.0  # --max-outage: well above the outage, so that it fails no row
SLACK = 0.10  # target: disturbed <= (1 + SLACK) x undisturbed + the outage
SYNTHETIC = 10  # the synthetic output is this many times the final one
POLL = 0.01  # seconds between looks at the output while a run goes on
PASSWORD = "sandbox"  # the sandbox's default; SANDBOX_AUTH keeps only its digest
CLI = Path(sys.executable).with_name("capillary-points")


# -- the sandbox, in a subprocess of its own ---------------------------------------------------


def _answer(payload: dict[str, Any]) -> None:
    print(json.dumps(payload), flush=True)


async def serve_sandbox() -> None:
    """Serve until stdin closes, answering one JSON line per command line:

    * ``outage SECONDS``: down from now for SECONDS; ``{"down_at", "up_at"}``;
    * ``count``: isTransferrable requests that arrived, and that were answered;
    * ``first_after T``: the first isTransferrable arrival at or after T (None if none).

    Times are the loop's clock, ``time.monotonic()``, which the parent's shares.
    """
    async with FakeCapillary(customers=CUSTOMERS, rate_limits=None) as fake:
        _answer({"url": fake.url})
        while line := await asyncio.to_thread(sys.stdin.readline):
            command, *args = line.split()
            if command == "outage":
                start = fake.now() - fake.started_at
                end = start + float(args[0])
                fake.set_faults(Faults(outage_during=(start, end)))
                _answer({"down_at": fake.started_at + start, "up_at": fake.started_at + end})
            elif command == "count":
                answered = sum(fake.stats.by_status(IS_TRANSFERRABLE).values())
                _answer({"requests": fake.stats.requests[IS_TRANSFERRABLE], "answered": answered})
            elif command == "first_after":
                arrivals = fake.arrivals(IS_TRANSFERRABLE)
                index = bisect_left(arrivals, float(args[0]))
                _answer({"at": arrivals[index] if index < len(arrivals) else None})
            else:
                _answer({"error": f"unknown command {command!r}"})


class Sandbox:
    """The parent's handle on :func:`serve_sandbox`'s process."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, __file__, "--sandbox"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url: str = self._read()["url"]

    def _read(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the sandbox exited with status {self._process.wait()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, *command: object) -> dict[str, Any]:
        assert self._process.stdin is not None
        self._process.stdin.write(" ".join(map(str, command)) + "\n")
        self._process.stdin.flush()
        return self._read()

    def count(self) -> tuple[int, int]:
        """isTransferrable requests that arrived so far, and that were answered."""
        counts = self.ask("count")
        return counts["requests"], counts["answered"]

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


# -- the command line under test ---------------------------------------------------------------


class OutputLines:
    """Whole lines in a growing output, counted from the bytes appended since the last look
    (re-reading hundreds of MB every few ms would take the CLI's CPU)."""

    def __init__(self, path: Path, offset: int = 0, lines: int = 0) -> None:
        self._path, self._offset, self.lines = path, offset, lines

    def look(self) -> int:
        try:
            with self._path.open("rb") as file:
                file.seek(self._offset)
                chunk = file.read()
        except FileNotFoundError:
            return self.lines
        whole = chunk.rfind(b"\n") + 1  # a line being written is counted once it is whole
        self.lines += chunk.count(b"\n", 0, whole)
        self._offset += whole
        return self.lines


def start_cli(
    sandbox: Sandbox, rows_csv: Path, output: Path, log: Path, *extra: str
) -> subprocess.Popen[bytes]:
    if not CLI.exists():
        sys.exit(f"{CLI} not found: install the package (.venv/bin/pip install -e .)")
    # fmt: off
    command = [
        str(CLI), "bulk-transferrable", str(rows_csv), "--output", str(output), *extra,
        "--base-url", sandbox.url, "--username", SANDBOX_AUTH.username,
        "--rate", "off", "--max-outage", f"{MAX_OUTAGE:g}",
    ]
    # fmt: on
    # The password through the environment (flags show in ps); no CAPILLARY_* setting of the
    # developer's may change the run.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CAPILLARY_")}
    environment["CAPILLARY_PASSWORD"] = PASSWORD
    with log.open("w") as stderr:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=environment)


def run_until(process: subprocess.Popen[bytes], lines: OutputLines, target: int) -> bool:
    """Wait until the output holds ``target`` lines (True) or the process has exited (False)."""
    while lines.look() < target:
        try:
            process.wait(timeout=POLL)
        except subprocess.TimeoutExpired:
            continue
        return lines.look() >= target
    return True


def whole_lines(path: Path) -> tuple[int, int]:
    """Whole lines in ``path`` and the bytes they take: what a resume keeps of it."""
    data = path.read_bytes()
    whole = data.rfind(b"\n") + 1
    return data.count(b"\n", 0, whole), whole


@dataclass
class Verdict:
    """What a finished output says about the input's rows."""

    lines: int
    missing: int  # input rows without a line
    extra: int  # lines beyond one per row that has one: repeats, or no input row's
    failed: Counter[str]  # rows not ok, by error type


def verdict_of(output: Path, rows: int) -> Verdict:
    seen: Counter[int] = Counter()
    failed: Counter[str] = Counter()
    with output.open("rb") as file:
        for text in file:
            line = orjson.loads(text)
            seen[line["line"]] += 1
            if not line["ok"]:
                failed[line["error"]["type"]] += 1
    lines = sum(seen.values())
    missing = sum(1 for number in range(2, rows + 2) if number not in seen)  # header: line 1
    return Verdict(lines, missing, lines - (rows - missing), failed)


@dataclass
class Runs:
    rows: int
    outage: float
    undisturbed_s: float = 0.0
    undisturbed_status: int | None = None
    undisturbed_requests: int = 0
    undisturbed_startup_s: float | None = None  # process start to its first request
    first_s: float = 0.0  # start to SIGKILL
    first_status: int | None = None
    lines_at_kill: int = 0  # whole lines the output held after the kill
    torn_bytes: int = 0  # the last line, cut mid-write by the kill
    resumed_s: float = 0.0
    resumed_status: int | None = None
    skipped: int | None = None  # "rows done before (resume)" in the resumed run's summary
    requests: int = 0  # isTransferrable arrivals over both parts
    answered: int = 0
    resumed_startup_s: float | None = None  # resumed process start to its first request
    down_from_s: float | None = None  # since the resumed process started; None: never down
    up_from_s: float | None = None
    first_after_outage_s: float | None = None  # after the sandbox listened again

    @property
    def disturbed_s(self) -> float:
        return self.first_s + self.resumed_s

    @property
    def target_s(self) -> float:
        return (1 + SLACK) * self.undisturbed_s + self.outage

    @property
    def breakdown(self) -> str:
        """Where the extra time went, as far as the sandbox's arrivals tell."""
        extra = self.disturbed_s - self.undisturbed_s
        parts = [(f"{self.outage:g} s outage", self.outage)]
        if self.first_after_outage_s is not None:
            parts.append(("wait after it", self.first_after_outage_s))
        if self.resumed_startup_s is not None:
            parts.append(("a second start-up", self.resumed_startup_s))
        parts.append(
            (
                "the rest (rows sent twice, throughput, noise)",
                extra - sum(seconds for _, seconds in parts),
            )
        )
        return " + ".join(f"{what} {seconds:.1f} s" for what, seconds in parts)

    @property
    def outage_text(self) -> str:
        if self.down_from_s is None or self.up_from_s is None:
            return "the sandbox never went down (the run ended first)"
        return f"sandbox down from +{self.down_from_s:.1f} s to +{self.up_from_s:.1f} s"

    @property
    def outage_inside(self) -> bool:
        return (
            self.down_from_s is not None
            and self.up_from_s is not None
            and self.down_from_s > 0
            and self.up_from_s < self.resumed_s
        )


def _skipped(log: Path) -> int | None:
    match = re.search(r"rows done before \(resume\)\W+([\d,]+)", log.read_text(errors="replace"))
    return None if match is None else int(match[1].replace(",", ""))


def _first_request(sandbox: Sandbox, since: float) -> float | None:
    """Seconds from ``since`` (time.monotonic) to the sandbox's next arrival, None if none."""
    at = sandbox.ask("first_after", since)["at"]
    return None if at is None else at - since


def run_both(sandbox: Sandbox, rows_csv: Path, directory: Path, runs: Runs) -> tuple[Path, Path]:
    """The undisturbed run, then the killed and resumed one; their outputs."""
    calm, output = directory / "undisturbed.jsonl", directory / "disturbed.jsonl"
    before, _ = sandbox.count()
    began = time.monotonic()
    process = start_cli(sandbox, rows_csv, calm, directory / "undisturbed.log")
    runs.undisturbed_status = process.wait()
    runs.undisturbed_s = time.monotonic() - began
    after, _ = sandbox.count()
    runs.undisturbed_requests = after - before
    runs.undisturbed_startup_s = _first_request(sandbox, began)
    print(f"undisturbed: {runs.undisturbed_s:.1f} s, exit {runs.undisturbed_status}", flush=True)

    before, answered_before = sandbox.count()
    began = time.monotonic()
    process = start_cli(sandbox, rows_csv, output, directory / "first.log")
    if run_until(process, OutputLines(output), int(KILL_AT * runs.rows)):
        process.send_signal(signal.SIGKILL)
    runs.first_status = process.wait()
    runs.first_s = time.monotonic() - began
    runs.lines_at_kill, kept = whole_lines(output)
    runs.torn_bytes = output.stat().st_size - kept
    print(
        f"first part: {runs.first_s:.1f} s, exit {runs.first_status}, "
        f"{runs.lines_at_kill:,} whole lines (+{runs.torn_bytes:,} bytes torn)",
        flush=True,
    )

    log = directory / "resumed.log"
    began = time.monotonic()
    process = start_cli(sandbox, rows_csv, output, log, "--resume")
    lines = OutputLines(output, kept, runs.lines_at_kill)
    down = None
    if run_until(process, lines, int(OUTAGE_AT * runs.rows)):
        down = sandbox.ask("outage", runs.outage)
    runs.resumed_status = process.wait()
    ended = time.monotonic()
    runs.resumed_s = ended - began
    runs.skipped = _skipped(log)
    after, answered_after = sandbox.count()
    runs.requests, runs.answered = after - before, answered_after - answered_before
    runs.resumed_startup_s = _first_request(sandbox, began)
    if down is not None:
        runs.down_from_s, runs.up_from_s = down["down_at"] - began, down["up_at"] - began
        runs.first_after_outage_s = _first_request(sandbox, down["up_at"])
    print(f"resumed part: {runs.resumed_s:.1f} s, exit {runs.resumed_status}", flush=True)
    return calm, output


# -- the resume scan alone, in a subprocess per case -------------------------------------------


def scan_case(how: str, path: str) -> dict[str, Any]:
    """One measurement, in this fresh process: the imports first (both cases make the same),
    then the peak reset, then the read."""
    # The CLI's own reader of an output (open_output calls it so, with _jsonl_line).
    from capillary_points_async.cli.bulk import _jsonl_line, scan_output

    has_peak = reset_peak_rss()
    start_kib = status_kib("VmRSS")
    began = time.perf_counter()
    if how == "scan":
        done, _ = scan_output(path, _jsonl_line)
        lines = done.count
    else:
        with open(path, "rb") as file:
            lines = sum(1 for _ in file)
    seconds = time.perf_counter() - began
    peak_kib = status_kib("VmHWM") if has_peak else status_kib("VmRSS")
    return {"lines": lines, "seconds": seconds, "start_kib": start_kib, "peak_kib": peak_kib}


@dataclass
class Scan:
    file: str
    how: str
    lines: int
    seconds: float
    start_kib: int
    peak_kib: int

    @property
    def growth_kib(self) -> int:
        return self.peak_kib - self.start_kib


SCAN = "resume scan (scan_output)"
COUNT = "line count (baseline)"


def measure_scan(how: str, path: Path, name: str) -> Scan:
    command = [sys.executable, __file__, "--scan", how, str(path)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr}")
    return Scan(name, SCAN if how == "scan" else COUNT, **json.loads(result.stdout))


def synthetic(output: Path, path: Path, times: int) -> int:
    """``output``'s lines ``times`` over, each copy's line numbers moved past the previous
    copy's, so that every line number is distinct, as in an output of a longer input.
    Returns the number of lines."""
    data = output.read_bytes()
    lines = data.splitlines(keepends=True)
    numbers = [int(text[8 : text.index(b",")]) for text in lines]  # b'{"line":N,...'
    span = max(numbers)
    with path.open("wb") as file:
        for copy in range(times):
            file.writelines(
                b'{"line":%d%s' % (number + copy * span, text[text.index(b",") :])
                for number, text in zip(numbers, lines, strict=True)
            )
    return len(lines) * times


def scan_pair(path: Path, name: str) -> list[Scan]:
    """The line count first (which also brings the file into the page cache), then the scan."""
    return [measure_scan("count", path, name), measure_scan("scan", path, name)]


def scans(final: Path, directory: Path, rows: int) -> list[Scan]:
    results = scan_pair(final, f"final output, {rows:,} lines")
    big = directory / "synthetic.jsonl"
    began = time.perf_counter()
    lines = synthetic(final, big, SYNTHETIC)
    print(
        f"synthetic output: {lines:,} lines, {big.stat().st_size / 1e9:.1f} GB, built in "
        f"{time.perf_counter() - began:.1f} s",
        flush=True,
    )
    results += scan_pair(big, f"synthetic, {lines:,} lines")
    big.unlink()
    return results


# -- report ------------------------------------------------------------------------------------


def report(runs: Runs, calm: Verdict, final: Verdict, results: list[Scan]) -> str:
    dupes = runs.answered - runs.rows
    never = runs.requests - runs.answered
    back = runs.first_after_outage_s
    startup = runs.resumed_startup_s
    mb = 1024
    return "\n".join(
        [
            f"== {runs.rows:,} rows through capillary-points bulk-transferrable --rate off, "
            "sandbox in its own process (no rate limit)",
            table(
                ("run", "wall time", "exit", "lines", "failed"),
                [
                    (
                        "undisturbed",
                        f"{runs.undisturbed_s:.1f} s",
                        runs.undisturbed_status,
                        f"{calm.lines:,}",
                        sum(calm.failed.values()),
                    ),
                    (
                        f"  first part, SIGKILL at {KILL_AT:.0%}",
                        f"{runs.first_s:.1f} s",
                        runs.first_status,
                        f"{runs.lines_at_kill:,}",
                        "",
                    ),
                    (
                        f"  --resume, {runs.outage:g} s outage at {OUTAGE_AT:.0%}",
                        f"{runs.resumed_s:.1f} s",
                        runs.resumed_status,
                        f"{final.lines - runs.lines_at_kill:,}",
                        "",
                    ),
                    (
                        "disturbed (both parts)",
                        f"{runs.disturbed_s:.1f} s",
                        "",
                        f"{final.lines:,}",
                        sum(final.failed.values()),
                    ),
                ],
            ),
            f"disturbed - undisturbed: {runs.disturbed_s - runs.undisturbed_s:+.1f} s "
            f"(target <= {SLACK:.0%} x undisturbed + {runs.outage:g} s = "
            f"{runs.target_s - runs.undisturbed_s:+.1f} s): {runs.breakdown}",
            f"kill: the output held {runs.lines_at_kill:,} whole lines and "
            f"{runs.torn_bytes:,} bytes of a torn one; the resumed run's summary: "
            f"rows done before (resume) {_count(runs.skipped)}",
            f"resumed run: process start to its first request {_seconds(startup)} (start-up, "
            "the input's SHA-256 and row count, the resume scan; the undisturbed run's: "
            f"{_seconds(runs.undisturbed_startup_s)}); {runs.outage_text}; first request "
            f"after it came back: {_seconds(back)} later (the client's retries, then its probe "
            "backoff: 1, 2, 4, 8 s...)",
            f"sandbox, disturbed run: {runs.requests:,} requests for {runs.rows:,} rows, "
            f"{runs.answered:,} answered: {dupes:,} rows answered twice (in flight or "
            f"answered but not yet written at the kill), {never:,} requests never answered "
            f"(cut by the kill or the outage, then sent again); undisturbed run: "
            f"{runs.undisturbed_requests:,} requests",
            "",
            "== reading an output back: each case a fresh subprocess with the same imports; "
            "peak is VmHWM, growth is peak - start",
            table(
                ("file", "reader", "lines", "time", "per line", "start", "peak", "growth"),
                [
                    (
                        scan.file,
                        scan.how,
                        f"{scan.lines:,}",
                        f"{scan.seconds:.2f} s",
                        f"{scan.seconds / max(scan.lines, 1) * 1e6:.1f} us",
                        f"{scan.start_kib / mb:.1f} MB",
                        f"{scan.peak_kib / mb:.1f} MB",
                        f"{scan.growth_kib / mb:.2f} MB",
                    )
                    for scan in results
                ],
            ),
        ]
    )


def _count(value: int | None) -> str:
    return "not printed" if value is None else f"{value:,}"


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def checks_of(runs: Runs, calm: Verdict, final: Verdict, results: list[Scan]) -> list[Check]:
    rows = runs.rows
    scan_growth = max(scan.growth_kib for scan in results if scan.how == SCAN) / 1024
    count_growth = max(scan.growth_kib for scan in results if scan.how == COUNT) / 1024
    return [
        Check(
            f"undisturbed: exit 0 ({runs.undisturbed_status}), every row once "
            f"({calm.missing} missing, {calm.extra} extra), none failed "
            f"({dict(calm.failed) or 0})",
            runs.undisturbed_status == 0 and calm.missing == calm.extra == 0 and not calm.failed,
            hard=True,
        ),
        Check(
            f"first part killed by SIGKILL (exit {runs.first_status}) with "
            f">= {KILL_AT:.0%} of the rows written ({runs.lines_at_kill:,} of {rows:,})",
            runs.first_status == -signal.SIGKILL and runs.lines_at_kill >= KILL_AT * rows,
            hard=True,
        ),
        Check(
            f"the outage within the resumed part ({runs.outage_text}, of {runs.resumed_s:.1f} s)",
            runs.outage_inside,
            hard=True,
        ),
        Check(f"resumed: exit 0 ({runs.resumed_status})", runs.resumed_status == 0, hard=True),
        Check(
            f"every input line exactly once in the final output ({final.lines:,} lines, "
            f"{final.missing} missing, {final.extra} extra)",
            final.missing == final.extra == 0,
            hard=True,
        ),
        Check(
            f"0 rows failed, none by the outage ({dict(final.failed) or 0})",
            not final.failed,
            hard=True,
        ),
        Check(
            f"the summary's rows done before (resume) == whole lines at the kill "
            f"({runs.skipped} == {runs.lines_at_kill:,})",
            runs.skipped == runs.lines_at_kill,
            hard=True,
        ),
        Check(
            f"disturbed <= {1 + SLACK:.2f} x undisturbed + {runs.outage:g} s "
            f"({runs.disturbed_s:.1f} s <= {runs.target_s:.1f} s)",
            runs.disturbed_s <= runs.target_s,
        ),
        Check(
            f"resume scan's memory flat: growth <= line count's + 1 MB at every size "
            f"({scan_growth:.2f} MB vs {count_growth:.2f} MB)",
            scan_growth <= count_growth + 1,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a shorter run (smoke test)")
    parser.add_argument("--sandbox", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scan", nargs=2, metavar=("HOW", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sandbox:
        asyncio.run(serve_sandbox())
        return 0
    if args.scan is not None:
        print(json.dumps(scan_case(*args.scan)))
        return 0
    runs = Runs(rows=10_000, outage=3.0) if args.quick else Runs(rows=100_000, outage=10.0)
    with tempfile.TemporaryDirectory(prefix="bench-bulk-resume-") as name:
        directory = Path(name)
        rows_csv = transfer_csv(directory / "checks.csv", runs.rows, CUSTOMERS)
        sandbox = Sandbox()
        try:
            calm_path, final_path = run_both(sandbox, rows_csv, directory, runs)
        finally:
            sandbox.close()
        calm, final = verdict_of(calm_path, runs.rows), verdict_of(final_path, runs.rows)
        calm_path.unlink()
        results = scans(final_path, directory, runs.rows)
    print(report(runs, calm, final, results), end="\n\n")
    status = report_checks(checks_of(runs, calm, final, results))
    saved = write_json(
        "bulk_resume.json",
        {
            "runs": {
                **asdict(runs),
                "disturbed_s": runs.disturbed_s,
                "target_s": runs.target_s,
            },
            "undisturbed": {**asdict(calm), "failed": dict(calm.failed)},
            "final": {**asdict(final), "failed": dict(final.failed)},
            "scans": [asdict(scan) for scan in results],
        },
    )
    print(f"results: {saved}")
    return status


if __name__ == "__main__":
    sys.exit(main())
