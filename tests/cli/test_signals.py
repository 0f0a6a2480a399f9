"""SIGINT and SIGTERM stop a bulk run cleanly: a real ``capillary-points`` process against the
sandbox, and a real signal. The lines of the rows that finished are written whole, the summary
is printed, and the exit status is 128 + the signal's number (130, 143)."""

from __future__ import annotations

import csv
import io
import json
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from capillary_points_async.testing import FakeCapillary

from .conftest import Result, wait_until


def complete_lines(path: Path) -> int:
    """How many whole lines have been written so far."""
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["TERM", "INT"]
)
def test_a_signal_stops_a_bulk_run_after_writing_what_finished(
    sandbox: FakeCapillary,
    connect: list[str],
    cli: Callable[..., Result],
    tmp_path: Path,
    signum: int,
    status: int,
) -> None:
    checks = tmp_path / "checks.csv"
    rows = (f"mobile:918{i % 40:09d},mobile:918{(i + 1) % 40:09d},1" for i in range(1000))
    checks.write_text("from,to,points\n" + "\n".join(rows) + "\n")
    output, stderr = tmp_path / "results.jsonl", tmp_path / "stderr.txt"
    command = [
        sys.executable, "-m", "capillary_points_async.cli", "bulk-transferrable", str(checks),
        "--output", str(output), "--rate", "50/1s", *connect,
    ]  # fmt: skip
    with stderr.open("w") as err:
        # 1,000 rows at 50/s would take 20 s: the signal comes long before the end.
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_until(lambda: complete_lines(output) >= 3, process, "3 result lines written")
        process.send_signal(signum)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    err_text = stderr.read_text()
    assert process.returncode == status, err_text
    lines = output.read_text().splitlines(keepends=True)
    assert all(line.endswith("\n") for line in lines)  # no torn last line
    numbers = [json.loads(line)["line"] for line in lines]
    assert 3 <= len(numbers) < 1000
    assert numbers == list(range(2, 2 + len(numbers)))  # in input order, none missing
    # the summary was printed, and counts exactly the rows that have a line
    done = re.search(r"^\W*rows\W+([\d,]+)", err_text, re.MULTILINE)
    assert done is not None, err_text
    assert int(done[1].replace(",", "")) == len(numbers)
    assert err_text.rstrip().endswith(
        f"capillary-points: interrupted by {signal.Signals(signum).name}"
    )
    # and the run it stopped can be resumed
    resumed = cli(*command[3:], "--resume", "--rate", "off")
    assert resumed.status == 0, resumed.err
    assert Counter(json.loads(line)["line"] for line in output.read_text().splitlines()) == (
        Counter(range(2, 1002))
    )


@pytest.mark.parametrize("output_format", ["jsonl", "csv"])
def test_a_run_killed_mid_write_resumes_with_every_row_once(
    connect: list[str], cli: Callable[..., Result], tmp_path: Path, output_format: str
) -> None:
    """kill -9 loses the rows in flight and may tear the last line; the resume redoes them
    (and a CSV output keeps its one header)."""
    checks = tmp_path / "checks.jsonl"
    rows = (
        f'{{"from": "mobile:918{i % 40:09d}", "to": "mobile:918{(i + 1) % 40:09d}", "points": 1}}'
        for i in range(2000)
    )
    checks.write_text("\n".join(rows) + "\n")
    output = tmp_path / f"results.{output_format}"
    command = [
        sys.executable, "-m", "capillary_points_async.cli", "bulk-transferrable", str(checks),
        "--output", str(output), "--output-format", output_format, "--rate", "400/1s",
        "--unordered", *connect,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Python flushes its file buffer every 8 kB: wait for a few flushes (a CSV record is
        # about 100 bytes, a JSON line 3 kB).
        wait_until(lambda: output.exists() and output.stat().st_size > 20_000, process, "output")
        process.kill()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL  # killed mid-run, not finished

    resumed = cli(*command[3:], "--resume", "--rate", "off")

    assert resumed.status == 0, resumed.err
    text = output.read_text()
    if output_format == "csv":
        assert text.startswith("line,from,to,")
        assert text.count("line,from,to,") == 1  # the resume wrote no second header
        numbers = [int(record["line"]) for record in csv.DictReader(io.StringIO(text))]
    else:
        numbers = [json.loads(line)["line"] for line in text.splitlines()]
    assert Counter(numbers) == Counter(range(1, 2001))
